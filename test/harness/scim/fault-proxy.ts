// A loopback HTTPS proxy in front of the SCIMMY test server that can be told to fail the way a
// real app fails: down (connection refused), hanging (past any request timeout), answering 500,
// 503 or 429 (with Retry-After), or presenting a certificate nobody trusts. Test plumbing: the
// SCIM answers themselves always come from the real server behind it.
//
//   const proxy = await startFaultProxy(new URL(scim.url).origin);
//   proxy.url('/scim/v2')              // https://127.0.0.1:PORT/scim/v2, trusted through proxy.caFile
//   await proxy.fault({ kind: 'status', status: 429, retryAfter: '3600' });
//   await proxy.fault({ kind: 'pass' });
//
// Each fault change closes every open connection, so a kept-alive connection never carries the
// old behaviour over. Runs in the test process; erasable TypeScript, node: built-ins only.

import http from "node:http";
import https from "node:https";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateCa, generateServerCert } from "../servers/slapd.ts";

export type Fault =
  | { kind: "pass" }
  /** Not listening: connections are refused (ECONNREFUSED). */
  | { kind: "down" }
  /** Accepts the request and never answers (until the next fault change or stop). */
  | { kind: "hang" }
  /** Answers with this status (a SCIM error body), `times` times (default: until changed). */
  | { kind: "status"; status: number; retryAfter?: string; times?: number }
  /** Serves a certificate from a CA the client was not given (TLS verification fails). */
  | { kind: "untrusted-cert" };

export type FaultScope = {
  /** Only requests whose path starts with this are faulted (e.g. "/admin" or "/scim"); the rest pass. */
  only?: string;
};

export type SeenRequest = { method: string; path: string; answer: "proxied" | "held" | number };

export type FaultProxy = {
  origin: string;
  port: number;
  /** CA of the proxy's normal certificate (give it to the client as tls.caFile). */
  caFile: string;
  url(path: string): string;
  fault(fault: Fault, scope?: FaultScope): Promise<void>;
  /** Requests that reached the proxy since the last fault change. */
  seen(): SeenRequest[];
  /** TCP connections accepted since the last fault change (keep-alive shows as fewer than requests). */
  connections(): number;
  stop(): Promise<void>;
};

export async function startFaultProxy(upstreamOrigin: string): Promise<FaultProxy> {
  const dir = mkdtempSync(join(tmpdir(), "provkey-fault-proxy-"));
  const trusted = await generateCa(join(dir, "trusted"), "provkey fault proxy CA");
  const good = await generateServerCert(join(dir, "trusted"), trusted);
  const stranger = await generateCa(join(dir, "untrusted"), "nobody trusts this CA");
  const bad = await generateServerCert(join(dir, "untrusted"), stranger);
  const goodContext = { cert: readFileSync(good.certFile), key: readFileSync(good.keyFile) };
  const badContext = { cert: readFileSync(bad.certFile), key: readFileSync(bad.keyFile) };

  const upstream = new URL(upstreamOrigin);
  const upstreamAgent = new http.Agent({ keepAlive: false });
  let current: Fault = { kind: "pass" };
  let scope: FaultScope = {};
  let remaining = Infinity;
  let seen: SeenRequest[] = [];
  let connections = 0;
  const held = new Set<http.ServerResponse>();
  const sockets = new Set<Socket>();

  const server = https.createServer({ ...goodContext }, (req, res) => {
    const path = req.url ?? "/";
    const faulted = current.kind !== "pass" && (scope.only === undefined || path.startsWith(scope.only)) && remaining > 0;
    if (faulted && current.kind === "hang") {
      seen.push({ method: req.method ?? "GET", path, answer: "held" });
      held.add(res);
      req.resume();
      return;
    }
    if (faulted && current.kind === "status") {
      remaining -= 1;
      seen.push({ method: req.method ?? "GET", path, answer: current.status });
      const body = JSON.stringify({ schemas: ["urn:ietf:params:scim:api:messages:2.0:Error"], status: String(current.status), detail: `fault proxy: ${current.status}` });
      const headers: http.OutgoingHttpHeaders = { "content-type": "application/scim+json", "content-length": Buffer.byteLength(body) };
      if (current.retryAfter !== undefined) headers["retry-after"] = current.retryAfter;
      req.resume();
      res.writeHead(current.status, headers).end(body);
      return;
    }
    seen.push({ method: req.method ?? "GET", path, answer: "proxied" });
    const forward = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path, headers: { ...req.headers, host: upstream.host }, agent: upstreamAgent },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on("error", () => res.destroy());
    req.pipe(forward);
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    connections += 1;
    socket.on("close", () => sockets.delete(socket));
  });
  server.on("tlsClientError", () => undefined);

  await listen(server, 0);
  const port = (server.address() as { port: number }).port;
  const origin = `https://127.0.0.1:${port}`;

  const dropConnections = (): void => {
    for (const res of held) res.destroy();
    held.clear();
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  };

  return {
    origin,
    port,
    caFile: trusted.caFile,
    url: (path) => `${origin}${path}`,
    seen: () => [...seen],
    connections: () => connections,
    async fault(next, nextScope = {}) {
      const wasDown = current.kind === "down";
      dropConnections();
      current = next;
      scope = nextScope;
      remaining = next.kind === "status" && next.times !== undefined ? next.times : Infinity;
      seen = [];
      connections = 0;
      server.setSecureContext(next.kind === "untrusted-cert" ? badContext : goodContext);
      if (next.kind === "down" && !wasDown) await close(server);
      if (next.kind !== "down" && wasDown) await listen(server, port);
    },
    async stop() {
      dropConnections();
      if (current.kind !== "down") await close(server);
      upstreamAgent.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function listen(server: https.Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
}

function close(server: https.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
