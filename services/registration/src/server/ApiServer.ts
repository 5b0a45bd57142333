import { createServer, type IncomingMessage, type Server, STATUS_CODES } from "node:http"
import type { Duplex } from "node:stream"
import { headersTooLarge, malformedRequest } from "../api/ApiErrors.ts"
import { errorEnvelope, newRequestId } from "./Envelope.ts"

/**
 * The node:http server behind the API. HEAD is answered wherever GET is (load balancers probe
 * with it): the request is routed as a GET, and Node, which created the response for a HEAD,
 * sends its headers (Content-Length included) without the body. Requests Node cannot parse (headers over its 16 KiB limit,
 * broken request lines or framing) never reach a route; Node would answer them with a bare status
 * line. Here they get the same error envelope as everything else, then the connection closes.
 */
export const createApiServer = (): Server => {
  const server = createServer()
  // Registered before the Effect server's own listener, so it sees the GET.
  server.on("request", (req: IncomingMessage) => {
    if (req.method === "HEAD") req.method = "GET"
  })
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex & { _httpMessage?: { headersSent?: boolean } }) => {
    // Nothing can be written to a client that went away or is mid-way through another response.
    if (!socket.writable || socket._httpMessage?.headersSent) return socket.destroy()
    // As Node itself answers a request that took longer than `requestTimeout` to arrive.
    if (error.code === "ERR_HTTP_REQUEST_TIMEOUT") return socket.end("HTTP/1.1 408 Request Timeout\r\nconnection: close\r\n\r\n")
    if (!error.code?.startsWith("HPE_")) return socket.destroy()
    const apiError = error.code === "HPE_HEADER_OVERFLOW" ? headersTooLarge() : malformedRequest()
    const { status, body, headers } = errorEnvelope(newRequestId(), apiError)
    const text = JSON.stringify(body)
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
        `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\n` +
        `x-request-id: ${headers["x-request-id"]}\r\nconnection: close\r\n\r\n${text}`
    )
  })
  return server
}
