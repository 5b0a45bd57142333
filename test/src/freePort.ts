import { once } from "node:events"
import net from "node:net"

/** A TCP port on 127.0.0.1 that nothing listened on a moment ago. */
export const freePort = async (): Promise<number> => {
  const server = net.createServer().listen(0, "127.0.0.1")
  await once(server, "listening")
  const port = (server.address() as net.AddressInfo).port
  server.close()
  return port
}
