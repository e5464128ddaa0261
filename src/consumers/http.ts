import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import { parseDuration } from '../core/duration.js';
import { ConfigError } from '../core/errors.js';

/**
 * The small HTTP client the identity-provider consumers (Graph, Okta) share: JSON in and out,
 * TLS verified (an extra CA is added to the system roots, never verification turned off), no
 * redirects followed (a redirect would carry the credential elsewhere), a timeout per request,
 * and 429/503 retried after Retry-After within a bound. Never throws for a status or an outage.
 */
export type Reply =
  | { kind: 'response'; status: number; body: unknown; text: string; retryAfterMs?: number }
  | { kind: 'unreachable'; code: string };

export type Answered = Extract<Reply, { kind: 'response' }> & { retried: number };

export interface JsonRequest {
  method: 'GET' | 'POST' | 'PUT';
  url: URL;
  /** The Authorization header's whole value ("Bearer …", "SSWS …"). */
  authorization?: string;
  body?: unknown;
}

export interface JsonClientOptions {
  caFile?: string | undefined;
  configDir: string;
  caField: string;
  timeoutMs: number;
  retries: number;
  maxRetryDelayMs: number;
}

const MAX_BODY = 1 << 20;

export class JsonClient {
  #agent: Promise<https.Agent> | undefined;
  readonly #options: JsonClientOptions;

  constructor(options: JsonClientOptions) {
    this.#options = options;
  }

  /** Sends, retrying 429/503 with Retry-After (and 429 without) up to `retries` times, each wait at most maxRetryDelay. */
  async send(request: JsonRequest): Promise<Reply & { retried: number }> {
    let retried = 0;
    for (;;) {
      const reply = await this.#once(request);
      const wait = reply.kind === 'response' && (reply.status === 429 || (reply.status === 503 && reply.retryAfterMs !== undefined)) ? (reply.retryAfterMs ?? 1000) : undefined;
      if (wait === undefined || retried >= this.#options.retries || wait > this.#options.maxRetryDelayMs) return { ...reply, retried };
      retried++;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  close(): void {
    void this.#agent?.then((agent) => agent.destroy());
  }

  #httpsAgent(): Promise<https.Agent> {
    this.#agent ??= (async () => {
      const { caFile, configDir, caField } = this.#options;
      if (caFile === undefined) return new https.Agent({ keepAlive: true });
      const file = path.resolve(configDir, caFile);
      const ca = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
        throw new ConfigError(`${caField}: cannot read ${file} (${error.code ?? 'error'})`);
      });
      return new https.Agent({ keepAlive: true, ca: [...rootCertificates, ca] });
    })();
    return this.#agent;
  }

  async #once(request: JsonRequest): Promise<Reply> {
    const secure = request.url.protocol === 'https:';
    const agent = secure ? await this.#httpsAgent() : undefined;
    const payload = request.body === undefined ? undefined : JSON.stringify(request.body);
    return new Promise<Reply>((resolve) => {
      const send = secure ? https.request : http.request;
      const req = send(
        request.url,
        {
          method: request.method,
          ...(agent ? { agent } : {}),
          timeout: this.#options.timeoutMs,
          headers: {
            accept: 'application/json',
            ...(request.authorization ? { authorization: request.authorization } : {}),
            ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
          },
        },
        (res) => {
          let text = '';
          let size = 0;
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            size += chunk.length;
            if (size <= MAX_BODY) text += chunk;
          });
          res.on('end', () => {
            let body: unknown;
            try {
              body = text ? JSON.parse(text) : undefined;
            } catch {
              body = undefined;
            }
            const retryAfter = retryAfterMs(res.headers['retry-after']);
            resolve({ kind: 'response', status: res.statusCode ?? 0, body, text, ...(retryAfter === undefined ? {} : { retryAfterMs: retryAfter }) });
          });
          res.on('error', (error: NodeJS.ErrnoException) => resolve({ kind: 'unreachable', code: error.code ?? 'ECONNRESET' }));
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
      req.on('error', (error: NodeJS.ErrnoException) => resolve({ kind: 'unreachable', code: error.code ?? 'ECONNRESET' }));
      req.end(payload);
    });
  }
}

function retryAfterMs(value: string | string[] | undefined): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!text) return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** An outage reply in words, for a one-line detail. */
export function describeOutage(reply: Reply & { retried?: number }): string {
  if (reply.kind === 'unreachable') return `unreachable: ${reply.code}`;
  return `HTTP ${reply.status}${reply.retried ? ` after ${reply.retried} retr${reply.retried === 1 ? 'y' : 'ies'} honouring Retry-After` : ''}`;
}

/** A consumer's connection settings (tls.caFile, timeout, retries, maxRetryDelay), as its config spells them. */
export interface ConsumerConnection {
  tls: { caFile?: string | undefined };
  timeout: string;
  retries: number;
  maxRetryDelay: string;
}

/** The JSON client of a consumer's config entry `field` (Graph, Okta): durations checked, CA file named by field. */
export function consumerJsonClient(config: ConsumerConnection, configDir: string, field: string): JsonClient {
  return new JsonClient({
    caFile: config.tls.caFile,
    configDir,
    caField: `${field}.tls.caFile`,
    timeoutMs: parseDuration(config.timeout, `${field}.timeout`),
    retries: config.retries,
    maxRetryDelayMs: parseDuration(config.maxRetryDelay, `${field}.maxRetryDelay`),
  });
}
