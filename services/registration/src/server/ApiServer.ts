import { createServer, type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from "node:http"
import type { Duplex } from "node:stream"
import { type ApiError, headersTooLarge, malformedRequest, notFound } from "../api/ApiErrors.ts"
import type { EarlyAnswer } from "./EarlyRefusals.ts"
import { errorEnvelope, newRequestId } from "./Envelope.ts"

/**
 * The node:http server behind the API. HEAD is answered wherever GET is (load balancers probe
 * with it): the request is routed as a GET, and Node, which created the response for a HEAD,
 * sends its headers (Content-Length included) without the body. Requests Node cannot parse (headers over its 16 KiB limit,
 * broken request lines or framing) never reach a route; Node would answer them with a bare status
 * line. Here they get the same error envelope as everything else, then the connection closes.
 *
 * Three more answers Node would give itself are taken over: an HTTP/1.1 request without `Host`
 * (Node's bare 400) is answered `400 MALFORMED_REQUEST` by the `HostRequired` middleware, which is
 * why Node's own check is off here; an `Expect` other than `100-continue` (Node's bare 417) is
 * ignored and the request served as it would be without it (RFC 9110 §10.1.1 allows either); a
 * `CONNECT` (which Node hands to a `connect` listener, and without one drops the connection
 * unanswered) names no route of this API: `404 NOT_FOUND`, then the connection closes.
 *
 * `answerEarly` (EarlyRefusals.ts) sees every request first and may answer it itself; a request
 * it answers is never emitted to the `request` listeners, so the Effect server never starts a
 * fiber for it. Node's listeners cannot stop the ones after them, hence the wrapped `emit`.
 */
export const createApiServer = (answerEarly?: EarlyAnswer): Server => {
  const server = createServer({ requireHostHeader: false })
  if (answerEarly !== undefined) {
    const emit = server.emit
    server.emit = function(this: Server, event: string | symbol, ...args: Array<unknown>) {
      if (event === "request" && answerEarly(args[0] as IncomingMessage, args[1] as ServerResponse)) return true
      return Reflect.apply(emit, this, [event, ...args]) as boolean
    } as Server["emit"]
  }
  // Registered before the Effect server's own listener, so it sees the GET.
  server.on("request", (req: IncomingMessage) => {
    if (req.method === "HEAD") req.method = "GET"
  })
  server.on("checkExpectation", (req: IncomingMessage, res: ServerResponse) => {
    server.emit("request", req, res)
  })
  server.on("connect", (_req: IncomingMessage, socket: Duplex) => endWithEnvelope(socket, notFound("No such route.")))
  server.on("clientError", (error: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Duplex & { _httpMessage?: { headersSent?: boolean } }) => {
    // Nothing can be written to a client that went away or is mid-way through another response.
    if (!socket.writable || socket._httpMessage?.headersSent) return socket.destroy()
    // As Node itself answers a request that took longer than `requestTimeout` to arrive.
    if (error.code === "ERR_HTTP_REQUEST_TIMEOUT") return socket.end("HTTP/1.1 408 Request Timeout\r\nconnection: close\r\n\r\n")
    if (!error.code?.startsWith("HPE_")) return socket.destroy()
    // The answer to a HEAD has no body: one would be read as the start of a next response.
    const head = error.rawPacket?.subarray(0, 5).toString("latin1") === "HEAD "
    endWithEnvelope(socket, error.code === "HPE_HEADER_OVERFLOW" ? headersTooLarge() : malformedRequest(), head)
  })
  return server
}

/**
 * Writes the error envelope straight to a socket no response object owns, then closes it; for a
 * HEAD, only the headers (with the length the body would have).
 */
const endWithEnvelope = (socket: Duplex, apiError: ApiError, headersOnly = false) => {
  if (!socket.writable) return socket.destroy()
  const { status, body, headers } = errorEnvelope(newRequestId(), apiError)
  const text = JSON.stringify(body)
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
      `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\n` +
      `x-request-id: ${headers["x-request-id"]}\r\nconnection: close\r\n\r\n${headersOnly ? "" : text}`
  )
}
