import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import { ConfigError } from '../../core/errors.js';
import type { SecretInUse } from '../target.js';
import { scrubSecrets } from './redact.js';
import { parseRetryAfter } from './retry-after.js';
import { isTlsErrorCode, isUnreachableCode } from '../network-errors.js';
import { sharedAgentsOf } from './shared-agents.js';

/**
 * A deliberately small HTTP client on node:http/https (undici is inside Node but cannot be
 * imported without installing it, and its Agent is what a custom CA needs). It never
 * follows redirects (a redirect would carry the bearer token to another place), never
 * throws for an HTTP status or a network failure, and keeps response headers to itself
 * (only Retry-After is read). Connections are kept alive and shared by the run's targets on
 * the same server (shared-agents.ts); a request that finds its reused connection closed by the server
 * is sent once more on a new one.
 */

export interface HttpTlsOptions {
  caFile?: string;
  serverName?: string;
}

export interface HttpRequest {
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  url: URL;
  /** Goes into the Authorization header and nowhere else. */
  bearer?: string;
  /** Sent as JSON. */
  body?: unknown;
  timeoutMs: number;
  /** Content type of the body and of the Accept header (SCIM: application/scim+json). */
  mediaType?: string;
  /**
   * Secrets to cut out of the answer before anyone reads it (a server may echo what it got).
   * The bearer token is always cut out too.
   */
  redact?: ReadonlyArray<SecretInUse | undefined>;
}

export type HttpReply =
  | {
      kind: 'response';
      status: number;
      body: unknown;
      text: string;
      /** Retry-After of a 429/503, in ms from when it arrived. */
      retryAfterMs?: number;
      /** Set by sendHonouringRetryAfter: the server asked for this wait, longer than provkey's bound. */
      gaveUpWaitingMs?: number;
    }
  /**
   * Refused, DNS, reset, timeout, or a TLS certificate provkey does not trust: the server we
   * mean could not be reached (verdict "unreachable", never "rejected").
   */
  | { kind: 'unreachable'; code: string; message: string; tls?: true }
  /** Reached it, but the exchange broke (an oversized or malformed answer). */
  | { kind: 'failed'; code: string; message: string };

export interface HttpClient {
  send(request: HttpRequest): Promise<HttpReply>;
  close(): void;
}

const MAX_BODY_BYTES = 1 << 20;


/**
 * One client per target, on agents shared by the run's targets with the same trust settings
 * (shared-agents.ts: one keep-alive pool per server, not one connection per key). The CA file
 * is read on the first request (a factory does no I/O); an unreadable CA file is a config the
 * target cannot use, so that one throws.
 */
export function createHttpClient(tls: HttpTlsOptions, context: { configDir: string; runScope?: Map<string, unknown> }, caField: string): HttpClient {
  const agents = sharedAgentsOf(context.runScope);
  const caFile = tls.caFile === undefined ? undefined : path.resolve(context.configDir, tls.caFile);
  // No cap on sockets: the batch's concurrency bounds them, and a request queued behind a cap
  // would spend its deadline waiting for a socket. Idle sockets are unref'd by the agent, so a
  // kept-alive connection never holds the process open.
  const plainName = 'http';
  const secureName = `https ${JSON.stringify(caFile ?? null)}`;
  const makeSecure = async (): Promise<https.Agent> => {
    if (!caFile) return new https.Agent({ keepAlive: true });
    let ca: Buffer;
    try {
      ca = await readFile(caFile);
    } catch (error) {
      throw new ConfigError(`${caField}: cannot read ${caFile}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    // `ca` replaces Node's bundled roots; keep them so a public certificate still verifies.
    return new https.Agent({ keepAlive: true, ca: [...rootCertificates, ca.toString('utf8')] });
  };
  // What this client holds (released on close); a failed acquire holds nothing, so a fixed CA file works on the next request.
  const held = new Map<string, Promise<http.Agent>>();
  const agentFor = (name: string, make: () => Promise<http.Agent>): Promise<http.Agent> => {
    let agent = held.get(name);
    if (!agent) {
      agent = agents.acquire(name, make);
      held.set(name, agent);
      // The registry forgets a failed agent itself: nothing to release.
      agent.catch(() => {
        if (held.get(name) === agent) held.delete(name);
      });
    }
    return agent;
  };

  return {
    async send(request) {
      const secure = request.url.protocol === 'https:';
      const transport = secure
        ? { module: https, agent: await agentFor(secureName, makeSecure) }
        : { module: http, agent: await agentFor(plainName, async () => new http.Agent({ keepAlive: true })) };
      const serverName = secure ? tls.serverName : undefined;
      const { stale, ...first } = await sendOnce(request, transport.module, transport.agent, serverName);
      // A kept-alive connection the server had closed while idle: sent again on a new one once
      // (every request provkey sends is idempotent: probes are reads, applier actions repeatable).
      if (!stale) return first;
      const { stale: _again, ...second } = await sendOnce(request, transport.module, transport.agent, serverName);
      return second;
    },
    close() {
      for (const name of held.keys()) agents.release(name);
      held.clear();
    },
  };
}

function sendOnce(
  request: HttpRequest,
  module: typeof http | typeof https,
  agent: http.Agent,
  serverName: string | undefined,
): Promise<HttpReply & { stale?: true }> {
  const mediaType = request.mediaType ?? 'application/json';
  const payload = request.body === undefined ? undefined : Buffer.from(JSON.stringify(request.body), 'utf8');
  const headers: http.OutgoingHttpHeaders = { accept: `${mediaType}, application/json;q=0.9` };
  if (request.bearer !== undefined) headers.authorization = `Bearer ${request.bearer}`;
  if (payload) {
    headers['content-type'] = `${mediaType}; charset=utf-8`;
    headers['content-length'] = payload.length;
  }

  return new Promise<HttpReply & { stale?: true }>((resolve) => {
    let settled = false;
    const finish = (reply: HttpReply & { stale?: true }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(reply);
    };
    const req = module.request(request.url, {
      method: request.method,
      headers,
      agent,
      ...(serverName ? { servername: serverName } : {}),
    });
    // A deadline for the whole exchange, not an idle timeout: a server that trickles bytes
    // must not hold a rotation hostage.
    const timer = setTimeout(() => {
      finish({ kind: 'unreachable', code: 'ETIMEDOUT', message: `no answer within ${request.timeoutMs}ms` });
      req.destroy();
    }, request.timeoutMs);

    req.on('error', (error: NodeJS.ErrnoException) => {
      const reply = classifyNetworkError(error);
      const stale = req.reusedSocket && reply.kind === 'unreachable' && (reply.code === 'ECONNRESET' || reply.code === 'EPIPE');
      finish(stale ? { ...reply, stale: true } : reply);
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) {
          finish({ kind: 'failed', code: 'EBODYTOOLARGE', message: `answer larger than ${MAX_BODY_BYTES} bytes` });
          req.destroy();
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', (error: NodeJS.ErrnoException) => finish(classifyNetworkError(error)));
      res.on('end', () => {
        // Scrub before parsing or truncating: a cut-off token would no longer match.
        const bearer = request.bearer === undefined ? undefined : { value: request.bearer, fingerprint: '[bearer token]' };
        const text = scrubSecrets(Buffer.concat(chunks).toString('utf8'), [...(request.redact ?? []), bearer]);
        const status = res.statusCode ?? 0;
        const retryAfter = status === 429 || status === 503 ? parseRetryAfter(headerText(res.headers['retry-after'])) : undefined;
        finish({ kind: 'response', status, body: parseJson(text), text, ...(retryAfter === undefined ? {} : { retryAfterMs: retryAfter }) });
      });
    });
    req.end(payload);
  });
}

function parseJson(text: string): unknown {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function classifyNetworkError(error: NodeJS.ErrnoException): HttpReply {
  const code = error.code ?? 'ERROR';
  // Node's messages name the host and port ("connect ECONNREFUSED 127.0.0.1:9"), never headers.
  const message = error.message.split('\n')[0] ?? code;
  if (isTlsErrorCode(code)) return { kind: 'unreachable', code, message: `TLS: ${message}`, tls: true };
  return isUnreachableCode(code) ? { kind: 'unreachable', code, message } : { kind: 'failed', code, message };
}
