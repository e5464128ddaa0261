// A real SCIM 2.0 service provider (SCIMMY) with a bearer-token gate, for
// provkey tests and the demo.
//
//   node test/harness/scim/server.ts [--port N] [--host 127.0.0.1]
//        [--tokens-file PATH] [--reload-ms 200] [--propagation-ms 0]
//        [--admin-token-file PATH] [--accept-command 'CMD']
//        [--no-spc] [--expose-state] [--exit-on-stdin-close] [--log] [--fail-writes]
//
// SCIM endpoints live under /scim/v2; every one of them requires
// `Authorization: Bearer <token>` whose SHA-256 digest is currently accepted.
// The server never stores or logs plaintext tokens: only digests (and 8-hex
// digest prefixes in --log output).
//
// Admin endpoints (outside the SCIM base path):
//   GET  /admin/health            → 200 {"ok":true}                   (no auth)
//   POST /admin/tokens            → 204 | 400 | 401                   (--admin-token-file; admin bearer)
//        {"action":"add"|"remove"|"replace","token":"<plaintext>","replaces"?:"<plaintext>"}
//   GET  /admin/state             → 200 {accepted,desired,pending,…}  (--expose-state only; digests only)
//
// On start prints exactly one JSON line to stdout:
//   {"ready":true,"url":"http://127.0.0.1:PORT/scim/v2","port":PORT}
//
// Erasable TypeScript only: runnable by Node 24 type stripping.

import { spawn, spawnSync } from "node:child_process";
import { timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { fileSignature, parseDigestList, readDigestFile, sha256Hex } from "./digest-file.ts";
import { TokenStore } from "./token-store.ts";
import { dataCounts, dispatch, scimErrorBody, setupScim } from "./scim-app.ts";

const BASE_PATH = "/scim/v2";
const SCIM_CONTENT_TYPE = "application/scim+json";
const MAX_BODY_BYTES = 1024 * 1024;
const COMMAND_TIMEOUT_MS = 5000;

function fail(message: string): never {
  process.stderr.write(`scim-server: ${message}\n`);
  process.exit(2);
}

function parseNonNegativeInt(name: string, raw: string | undefined, dflt: number): number {
  if (raw === undefined) return dflt;
  if (!/^\d+$/.test(raw)) fail(`--${name} must be a non-negative integer, got '${raw}'`);
  return Number.parseInt(raw, 10);
}

let args: ReturnType<typeof parseCli>;
function parseCli() {
  return parseArgs({
    args: process.argv.slice(2),
    strict: true,
    allowPositionals: false,
    options: {
      port: { type: "string" },
      host: { type: "string" },
      "tokens-file": { type: "string" },
      "reload-ms": { type: "string" },
      "propagation-ms": { type: "string" },
      "admin-token-file": { type: "string" },
      "accept-command": { type: "string" },
      "no-spc": { type: "boolean" },
      "fail-writes": { type: "boolean" }, // reserved, ignored
      "expose-state": { type: "boolean" },
      "exit-on-stdin-close": { type: "boolean" },
      log: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
}
try {
  args = parseCli();
} catch (err) {
  fail((err as Error).message);
}

const opts = args.values;
if (opts.help) {
  process.stdout.write(
    "usage: node test/harness/scim/server.ts [--port N] [--tokens-file PATH] [--reload-ms MS] " +
      "[--propagation-ms MS] [--admin-token-file PATH] [--accept-command CMD] [--no-spc] " +
      "[--expose-state] [--exit-on-stdin-close] [--log]\n",
  );
  process.exit(0);
}

const port = parseNonNegativeInt("port", opts.port, 0);
if (port > 65535) fail("--port must be <= 65535");
const host = opts.host ?? "127.0.0.1";
const reloadMs = Math.max(10, parseNonNegativeInt("reload-ms", opts["reload-ms"], 200));
const propagationMs = parseNonNegativeInt("propagation-ms", opts["propagation-ms"], 0);
const tokensFile = opts["tokens-file"];
const adminTokenFile = opts["admin-token-file"];
const acceptCommand = opts["accept-command"];
const logEnabled = opts.log === true;

function log(line: string): void {
  if (logEnabled) process.stderr.write(`scim-server: ${line}\n`);
}

// ---------------------------------------------------------------------------
// Token sources

const tokens = new TokenStore({ propagationMs });

let fileSig: string | undefined;
let lastFilePoll = 0;

function pollTokensFile(force = false): void {
  if (tokensFile === undefined) return;
  const now = Date.now();
  if (!force && now - lastFilePoll < reloadMs) return;
  lastFilePoll = now;
  let sig: string;
  try {
    sig = fileSignature(tokensFile);
  } catch (err) {
    log(`cannot stat tokens file: ${(err as Error).message}`);
    return;
  }
  if (sig === fileSig) return;
  try {
    const parsed = readDigestFile(tokensFile);
    fileSig = sig;
    if (parsed.invalidLines.length > 0) log(`tokens file: ignored invalid line(s) ${parsed.invalidLines.join(",")}`);
    log(`tokens file changed: ${parsed.digests.size} digest(s)`);
    tokens.setSource("file", parsed.digests);
  } catch (err) {
    log(`cannot read tokens file: ${(err as Error).message}`);
  }
}

let commandRunning = false;
let lastCommandRun = 0;
let lastCommandOutput: string | undefined;

function applyCommandOutput(stdout: string): void {
  if (stdout === lastCommandOutput) return;
  lastCommandOutput = stdout;
  const parsed = parseDigestList(stdout);
  if (parsed.invalidLines.length > 0) log(`accept-command: ignored invalid line(s) ${parsed.invalidLines.join(",")}`);
  log(`accept-command output changed: ${parsed.digests.size} digest(s)`);
  tokens.setSource("command", parsed.digests);
}

function runAcceptCommandSync(): void {
  if (acceptCommand === undefined) return;
  const res = spawnSync("/bin/sh", ["-c", acceptCommand], { encoding: "utf8", timeout: COMMAND_TIMEOUT_MS });
  lastCommandRun = Date.now();
  if (res.status === 0) applyCommandOutput(res.stdout);
  else process.stderr.write(`scim-server: accept-command failed at start-up (status ${String(res.status)}); starting with no command digests\n`);
}

function pollAcceptCommand(): void {
  if (acceptCommand === undefined || commandRunning) return;
  if (Date.now() - lastCommandRun < reloadMs) return;
  commandRunning = true;
  lastCommandRun = Date.now();
  const child = spawn("/bin/sh", ["-c", acceptCommand], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    if (out.length < MAX_BODY_BYTES) out += chunk;
  });
  child.stderr.resume();
  const timer = setTimeout(() => child.kill("SIGKILL"), COMMAND_TIMEOUT_MS);
  child.on("error", (err) => {
    clearTimeout(timer);
    commandRunning = false;
    log(`accept-command error: ${err.message}`);
  });
  child.on("close", (code) => {
    clearTimeout(timer);
    commandRunning = false;
    lastCommandRun = Date.now();
    if (code === 0) applyCommandOutput(out);
    else log(`accept-command exited with ${String(code)}; keeping previous digests`);
  });
}

function readAdminDigest(): string | undefined {
  if (adminTokenFile === undefined) return undefined;
  const parsed = readDigestFile(adminTokenFile);
  const [first] = [...parsed.digests];
  return first;
}

if (adminTokenFile !== undefined) {
  try {
    if (readAdminDigest() === undefined) fail(`--admin-token-file ${adminTokenFile} holds no SHA-256 hex digest`);
  } catch (err) {
    fail(`cannot read --admin-token-file: ${(err as Error).message}`);
  }
}

pollTokensFile(true);
runAcceptCommandSync();
tokens.initialise();

const poller = setInterval(() => {
  pollTokensFile();
  pollAcceptCommand();
  tokens.flush();
}, reloadMs);

// ---------------------------------------------------------------------------
// HTTP plumbing

type BodyResult = { ok: true; value: unknown } | { ok: false; status: number; detail: string };

function readBody(req: IncomingMessage): Promise<BodyResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        tooLarge = true;
        return;
      }
      chunks.push(chunk);
    });
    req.on("error", (err) => resolve({ ok: false, status: 400, detail: `Error reading request body: ${err.message}` }));
    req.on("end", () => {
      if (tooLarge) return resolve({ ok: false, status: 413, detail: "Request body too large" });
      const text = Buffer.concat(chunks).toString("utf8");
      if (text.trim() === "") return resolve({ ok: true, value: undefined });
      try {
        resolve({ ok: true, value: JSON.parse(text) });
      } catch {
        resolve({ ok: false, status: 400, detail: "Request body is not valid JSON" });
      }
    });
  });
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  contentType: string,
  headers: Record<string, string> = {},
): void {
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.setHeader("cache-control", "no-store");
  if (body === undefined || status === 204) {
    res.writeHead(status);
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.setHeader("content-type", contentType);
  res.setHeader("content-length", Buffer.byteLength(text));
  res.writeHead(status);
  res.end(text);
}

type BearerCheck = { ok: true; digestPrefix: string } | { ok: false; digestPrefix: string; wwwAuthenticate: string; detail: string };

function extractBearer(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (typeof header !== "string") return undefined;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return m ? m[1] : undefined;
}

function checkScimBearer(req: IncomingMessage): BearerCheck {
  const header = req.headers.authorization;
  if (typeof header !== "string" || header.trim() === "") {
    return { ok: false, digestPrefix: "-", wwwAuthenticate: 'Bearer realm="scim"', detail: "Missing bearer token" };
  }
  const token = extractBearer(req);
  if (token === undefined) {
    return {
      ok: false,
      digestPrefix: "-",
      wwwAuthenticate: 'Bearer realm="scim", error="invalid_request"',
      detail: "Authorization header must use the Bearer scheme",
    };
  }
  const result = tokens.verify(token);
  if (!result.ok) {
    return {
      ok: false,
      digestPrefix: result.digestPrefix,
      wwwAuthenticate: 'Bearer realm="scim", error="invalid_token"',
      detail: "Invalid, expired or revoked bearer token",
    };
  }
  return { ok: true, digestPrefix: result.digestPrefix };
}

function safeEqualHex(a: string, b: string): boolean {
  // Both are 64-hex digests; compare in constant time.
  const ab = Buffer.from(a, "hex");
  const bb = Buffer.from(b, "hex");
  return ab.length === bb.length && ab.length > 0 && timingSafeEqual(ab, bb);
}


const TOKEN_RE = /^[\x21-\x7e]{1,4096}$/;

async function handleAdmin(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<[number, string]> {
  const method = req.method ?? "GET";
  if (pathname === "/admin/health") {
    if (method !== "GET" && method !== "HEAD") {
      send(res, 405, { error: "method not allowed" }, "application/json", { allow: "GET" });
      return [405, "-"];
    }
    send(res, 200, { ok: true }, "application/json");
    return [200, "-"];
  }

  if (pathname === "/admin/state" && opts["expose-state"]) {
    if (method !== "GET") {
      send(res, 405, { error: "method not allowed" }, "application/json", { allow: "GET" });
      return [405, "-"];
    }
    pollTokensFile();
    send(res, 200, { ...tokens.snapshot(), data: dataCounts() }, "application/json");
    return [200, "-"];
  }

  if (pathname === "/admin/tokens" && adminTokenFile !== undefined) {
    if (method !== "POST") {
      send(res, 405, scimErrorBody(405, "Method not allowed; use POST"), "application/json", { allow: "POST" });
      return [405, "-"];
    }
    const presented = extractBearer(req);
    const presentedDigest = presented === undefined ? undefined : sha256Hex(presented);
    const prefix = presentedDigest?.slice(0, 8) ?? "-";
    let adminDigest: string | undefined;
    try {
      adminDigest = readAdminDigest();
    } catch {
      adminDigest = undefined;
    }
    if (presentedDigest === undefined || adminDigest === undefined || !safeEqualHex(presentedDigest, adminDigest)) {
      req.resume();
      send(res, 401, scimErrorBody(401, presented === undefined ? "Missing admin bearer token" : "Invalid admin bearer token"), "application/json", {
        "www-authenticate": presented === undefined ? 'Bearer realm="admin"' : 'Bearer realm="admin", error="invalid_token"',
      });
      return [401, prefix];
    }
    const body = await readBody(req);
    if (!body.ok) {
      send(res, body.status, scimErrorBody(body.status, body.detail, "invalidSyntax"), "application/json");
      return [body.status, prefix];
    }
    const v = body.value as Record<string, unknown> | undefined;
    const bad = (detail: string): [number, string] => {
      send(res, 400, scimErrorBody(400, detail, "invalidValue"), "application/json");
      return [400, prefix];
    };
    if (v === null || typeof v !== "object" || Array.isArray(v)) return bad("Body must be a JSON object");
    const action = v.action;
    if (action !== "add" && action !== "remove" && action !== "replace") {
      return bad("'action' must be one of add, remove, replace");
    }
    if (typeof v.token !== "string" || !TOKEN_RE.test(v.token)) {
      return bad("'token' must be a non-empty string of printable, non-space ASCII (max 4096)");
    }
    if (action === "replace") {
      if (typeof v.replaces !== "string" || !TOKEN_RE.test(v.replaces)) {
        return bad("'replaces' (the token being replaced) is required for action 'replace'");
      }
      if (v.replaces === v.token) return bad("'replaces' must differ from 'token'");
    } else if (v.replaces !== undefined) {
      return bad("'replaces' is only valid with action 'replace'");
    }
    const digest = sha256Hex(v.token);
    if (action === "add") tokens.adminAdd(digest);
    else if (action === "remove") tokens.adminRemove(digest);
    else {
      tokens.adminAdd(digest);
      tokens.adminRemove(sha256Hex(v.replaces as string));
    }
    tokens.commitAdmin();
    log(`admin ${action} digest=${digest.slice(0, 8)} (effective in ${propagationMs}ms)`);
    send(res, 204, undefined, "application/json");
    return [204, prefix];
  }

  send(res, 404, { error: "not found" }, "application/json");
  return [404, "-"];
}

async function handleScim(req: IncomingMessage, res: ServerResponse, url: URL): Promise<[number, string]> {
  pollTokensFile();
  const auth = checkScimBearer(req);
  if (!auth.ok) {
    req.resume();
    send(res, 401, scimErrorBody(401, auth.detail), SCIM_CONTENT_TYPE, { "www-authenticate": auth.wwwAuthenticate });
    return [401, auth.digestPrefix];
  }

  const rest = url.pathname.slice(BASE_PATH.length);
  let segments: string[];
  try {
    segments = rest.split("/").filter((s) => s !== "").map((s) => decodeURIComponent(s));
  } catch {
    req.resume();
    send(res, 400, scimErrorBody(400, "Malformed percent-encoding in path", "invalidSyntax"), SCIM_CONTENT_TYPE);
    return [400, auth.digestPrefix];
  }

  const method = (req.method ?? "GET").toUpperCase();
  let body: unknown;
  if (method === "POST" || method === "PUT" || method === "PATCH") {
    const read = await readBody(req);
    if (!read.ok) {
      send(res, read.status, scimErrorBody(read.status, read.detail, read.status === 400 ? "invalidSyntax" : undefined), SCIM_CONTENT_TYPE);
      return [read.status, auth.digestPrefix];
    }
    body = read.value;
  } else {
    req.resume();
  }

  const result = await dispatch({ method, segments, query: url.searchParams, body }, { noServiceProviderConfig: opts["no-spc"] === true });
  send(res, result.status, result.body, SCIM_CONTENT_TYPE, result.headers ?? {});
  return [result.status, auth.digestPrefix];
}

const server = createServer(async (req, res) => {
  const started = Date.now();
  const method = req.method ?? "GET";
  let url: URL;
  try {
    url = new URL(req.url ?? "/", "http://127.0.0.1");
  } catch {
    send(res, 400, { error: "bad request" }, "application/json");
    return;
  }
  const pathname = url.pathname;
  let status = 500;
  let prefix = "-";
  try {
    if (pathname === BASE_PATH || pathname.startsWith(`${BASE_PATH}/`)) {
      [status, prefix] = await handleScim(req, res, url);
    } else if (pathname.startsWith("/admin/")) {
      [status, prefix] = await handleAdmin(req, res, pathname);
    } else {
      req.resume();
      send(res, 404, { error: "not found" }, "application/json");
      status = 404;
    }
  } catch (err) {
    status = 500;
    if (!res.headersSent) send(res, 500, scimErrorBody(500, "Internal server error"), SCIM_CONTENT_TYPE);
    else res.destroy();
    log(`internal error: ${(err as Error).stack ?? String(err)}`);
  }
  // Path only (never the query string, never headers): nothing secret ends up in logs.
  log(`${method} ${pathname} ${status} token=${prefix} ${Date.now() - started}ms`);
});

server.keepAliveTimeout = 2000;

let stopping = false;
function shutdown(reason: string): void {
  if (stopping) return;
  stopping = true;
  log(`stopping (${reason})`);
  clearInterval(poller);
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => {
    server.closeAllConnections();
    process.exit(0);
  }, 1500).unref();
}

process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));
if (opts["exit-on-stdin-close"]) {
  process.stdin.on("end", () => shutdown("stdin closed"));
  process.stdin.on("error", () => shutdown("stdin error"));
  process.stdin.resume();
}

server.on("error", (err) => fail(`cannot listen: ${err.message}`));
server.listen(port, host, () => {
  const addr = server.address() as AddressInfo;
  const hostForUrl = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  const url = `http://${hostForUrl}:${addr.port}${BASE_PATH}`;
  setupScim(url);
  process.stdout.write(`${JSON.stringify({ ready: true, url, port: addr.port })}\n`);
  log(
    `listening on ${url} (tokens-file=${tokensFile ?? "-"}, propagation=${propagationMs}ms, reload=${reloadMs}ms, ` +
      `admin=${adminTokenFile === undefined ? "off" : "on"}, spc=${opts["no-spc"] ? "off" : "on"})`,
  );
});
