/**
 * A real HTTPS webhook receiver for end-to-end tests: a self-signed certificate for 127.0.0.1
 * (made with openssl; give the dispatcher `ORBIT_EXTRA_CA_FILE: tls.caFile` and
 * `ORBIT_ALLOW_PRIVATE_CIDRS: "127.0.0.0/8"`), recording every request, answering per path.
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { createServer, type Server } from "node:https"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

export interface Received {
  readonly at: number
  readonly path: string
  readonly headers: Record<string, string>
  readonly body: string
  /** The status this receiver answered with. */
  readonly status: number
}

/** A status with response headers (e.g. `retry-after`). */
export interface Answer {
  readonly status: number
  readonly headers: Record<string, string>
}

export interface SelfSignedCert {
  readonly key: Buffer
  readonly cert: string
  /** A PEM file holding the certificate, for `ORBIT_EXTRA_CA_FILE`. */
  readonly caFile: string
  cleanup(): void
}

/** A certificate for 127.0.0.1 and localhost, and for `names` too (for receivers reached by a DNS name). */
export const makeSelfSignedCert = (names: ReadonlyArray<string> = []): SelfSignedCert => {
  const dir = mkdtempSync(join(tmpdir(), "orbit-e2e-tls-"))
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
    "-subj", "/CN=127.0.0.1", "-addext", `subjectAltName=${["IP:127.0.0.1", "DNS:localhost", ...names.map((n) => `DNS:${n}`)].join(",")}`,
    "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")
  ], { stdio: "ignore" })
  return {
    key: readFileSync(join(dir, "key.pem")),
    cert: readFileSync(join(dir, "cert.pem"), "utf8"),
    caFile: join(dir, "cert.pem"),
    cleanup: () => rmSync(dir, { recursive: true, force: true })
  }
}

export interface HttpsReceiver {
  readonly port: number
  /** `https://127.0.0.1:<port><path>` */
  url(path: string): string
  readonly received: Array<Received>
  /** The status to answer on `path` (default 200), decided per request; with headers when an object. */
  respond(path: string, status: (request: Omit<Received, "status">) => number | Answer): void
  close(): Promise<void>
}

export const startHttpsReceiver = async (tls: { key: Buffer; cert: string }): Promise<HttpsReceiver> => {
  const received: Array<Received> = []
  const statuses = new Map<string, (request: Omit<Received, "status">) => number | Answer>()
  const server: Server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const request = {
        at: Date.now(),
        path: req.url ?? "",
        headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(",") : v ?? ""])),
        body: Buffer.concat(chunks).toString("utf8")
      }
      const answer = statuses.get(request.path)?.(request) ?? 200
      const { status, headers } = typeof answer === "number" ? { status: answer, headers: {} } : answer
      received.push({ ...request, status })
      res.writeHead(status, { "content-type": "text/plain", ...headers }).end(status < 300 ? "ok" : "nope")
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as AddressInfo).port
  return {
    port,
    url: (path) => `https://127.0.0.1:${port}${path}`,
    received,
    respond: (path, status) => void statuses.set(path, status),
    close: async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  }
}
