// The benchmarks' HTTP/1.1 client: keep-alive connections, one request in flight on each,
// requests written as prepared bytes, responses framed by Content-Length. The load generator
// shares two cores with everything it measures, so it must cost little: undici's CPU per request
// is a sizeable fraction of the API server's own (docs/BENCHMARKS.md).
import net from "node:net"

export interface Response { readonly status: number; readonly body: Buffer }

interface Conn {
  socket: net.Socket
  chunks: Array<Buffer>
  size: number
  served: number
  bytes?: Buffer
  done?: (r: Response | Error) => void
}

const HEADER_END = Buffer.from("\r\n\r\n")

export class LoadClient {
  private readonly idle: Array<Conn> = []
  private readonly queue: Array<{ bytes: Buffer; done: (r: Response | Error) => void }> = []
  private readonly all: Array<Conn> = []

  private readonly host: string
  private readonly port: number
  private readonly connections: number

  constructor(host: string, port: number, connections: number) {
    this.host = host
    this.port = port
    this.connections = connections
  }

  /** `GET`/`POST` bytes for `path`, with `headers` and an optional body, ready to send repeatedly. */
  prepare(method: string, path: string, headers: Record<string, string>, body?: string): Buffer {
    const lines = [`${method} ${path} HTTP/1.1`, `host: ${this.host}:${this.port}`]
    for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`)
    if (body !== undefined) lines.push(`content-length: ${Buffer.byteLength(body)}`)
    return Buffer.from(lines.join("\r\n") + "\r\n\r\n" + (body ?? ""))
  }

  request(bytes: Buffer): Promise<Response> {
    return new Promise((resolve, reject) => {
      const done = (r: Response | Error) => (r instanceof Error ? reject(r) : resolve(r))
      const conn = this.idle.pop() ?? this.open()
      if (conn) this.send(conn, bytes, done)
      else this.queue.push({ bytes, done })
    })
  }

  close() {
    for (const c of this.all) c.socket.destroy()
  }

  private open(): Conn | undefined {
    if (this.all.length >= this.connections) return undefined
    const conn: Conn = { socket: net.connect(this.port, this.host), chunks: [], size: 0, served: 0 }
    conn.socket.setNoDelay(true)
    conn.socket.on("data", (chunk) => this.onData(conn, chunk))
    conn.socket.on("error", (e) => this.fail(conn, e))
    conn.socket.on("close", () => this.fail(conn, new Error("connection closed")))
    this.all.push(conn)
    return conn
  }

  private send(conn: Conn, bytes: Buffer, done: (r: Response | Error) => void) {
    conn.done = done
    conn.bytes = bytes
    conn.socket.write(bytes)
  }

  private onData(conn: Conn, chunk: Buffer) {
    conn.chunks.push(chunk)
    conn.size += chunk.length
    const data = conn.chunks.length === 1 ? chunk : Buffer.concat(conn.chunks, conn.size)
    const headerEnd = data.indexOf(HEADER_END)
    if (headerEnd < 0) return
    const head = data.toString("latin1", 0, headerEnd)
    const match = /\r\ncontent-length: *(\d+)/i.exec(head)
    if (!match) return this.fail(conn, new Error(`response without Content-Length: ${head.split("\r\n")[0]}`))
    const end = headerEnd + 4 + Number(match[1])
    if (data.length < end) {
      conn.chunks = [data]
      return
    }
    conn.chunks = []
    conn.size = 0
    conn.served++
    const done = conn.done!
    conn.done = undefined
    const next = this.queue.shift()
    if (next) this.send(conn, next.bytes, next.done)
    else this.idle.push(conn)
    done({ status: Number(head.slice(9, 12)), body: data.subarray(headerEnd + 4, end) })
  }

  private fail(conn: Conn, error: Error) {
    if (!this.all.includes(conn)) return
    conn.socket.destroy()
    const done = conn.done
    conn.done = undefined
    this.all.splice(this.all.indexOf(conn), 1)
    const i = this.idle.indexOf(conn)
    if (i >= 0) this.idle.splice(i, 1)
    // A kept-alive connection the server closed as idle just as a request went out: like other
    // HTTP clients, send an idempotent request again on a new connection (RFC 9112 §9.3.1).
    if (done && conn.served > 0 && conn.size === 0 && conn.bytes!.subarray(0, 4).toString() === "GET ") {
      return this.send(this.open()!, conn.bytes!, done)
    }
    done?.(error)
    const next = this.queue.shift()
    if (next) this.send(this.open()!, next.bytes, next.done)
  }
}
