import { createHmac, randomUUID } from 'node:crypto';
import { isLoopbackHost } from '../core/loopback.js';
import { redact } from '../core/redact.js';
import type { WebhookEventType } from './events.js';

/**
 * Outbound webhooks signed per the Standard Webhooks scheme (standardwebhooks.com):
 * `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature` =
 * `v1,` + base64(HMAC-SHA256(key, `${id}.${timestamp}.${body}`)), the key being the base64
 * after `whsec_`. Bodies carry fingerprints only. Delivery is best-effort: bounded retries
 * with exponential backoff, then a warning; a webhook never fails the run that sent it.
 */

/** The body's `data`: names, fingerprints, outcomes and times; never a value. */
export type WebhookData = { schemaVersion: 1; key: string } & Record<string, unknown>;

export interface WebhookEvent {
  type: WebhookEventType;
  data: WebhookData;
}

export interface WebhookTarget {
  url: string;
  /** `whsec_<base64>`, resolved from the config's secret reference. */
  secret: string;
  /** Only these events; undefined: all. */
  events?: readonly WebhookEventType[];
  timeoutMs: number;
  retries: number;
  allowInsecureHttp: boolean;
  /** First retry delay; each next one doubles, capped at 8 s. */
  backoffMs: number;
}

export interface Delivery {
  url: string;
  type: WebhookEventType;
  id: string;
  ok: boolean;
  attempts: number;
  error?: string;
}

const MAX_BACKOFF_MS = 8000;

export function signingKey(secret: string, field: string): Buffer {
  const match = /^whsec_([A-Za-z0-9+/]+={0,2})$/.exec(secret.trim());
  const key = match ? Buffer.from(match[1]!, 'base64') : Buffer.alloc(0);
  if (key.length < 16) throw new Error(`${field}: must resolve to a Standard Webhooks secret "whsec_<base64 of at least 16 bytes>"`);
  return key;
}

export function signPayload(key: Buffer, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/** Checks the URL before anything is sent: https, or http only to loopback unless allowed. */
export function checkWebhookUrl(url: string, allowInsecureHttp: boolean, field: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Not echoed: webhook URLs often carry a secret path (chat incoming hooks do).
    throw new Error(`${field}: not a valid URL`);
  }
  if (parsed.username || parsed.password) throw new Error(`${field}: credentials in the URL are refused (use secretRef)`);
  if (parsed.protocol === 'https:') return parsed;
  if (parsed.protocol === 'http:' && (allowInsecureHttp || isLoopbackHost(parsed.hostname))) return parsed;
  throw new Error(`${field}: ${parsed.protocol}// is refused; use https (plain http only to loopback, or allowInsecureHttp: true)`);
}

/** Sends every event to every webhook that wants it, all in parallel; resolves when each is delivered or given up. */
export async function sendWebhooks(targets: readonly WebhookTarget[], events: readonly WebhookEvent[], now: () => Date = () => new Date()): Promise<Delivery[]> {
  const jobs = targets.flatMap((target) => events.filter((e) => !target.events || target.events.includes(e.type)).map((event) => deliver(target, event, now)));
  return Promise.all(jobs);
}

async function deliver(target: WebhookTarget, event: WebhookEvent, now: () => Date): Promise<Delivery> {
  const id = `msg_${randomUUID()}`;
  const key = signingKey(target.secret, 'notify.secretRef');
  // redact: the last line of defence, should a message ever quote a registered secret.
  const body = redact(JSON.stringify({ type: event.type, timestamp: now().toISOString(), data: event.data }));
  let error = '';
  for (let attempt = 1; ; attempt++) {
    const timestamp = Math.floor(now().getTime() / 1000);
    try {
      const response = await fetch(target.url, {
        method: 'POST',
        redirect: 'manual',
        signal: AbortSignal.timeout(target.timeoutMs),
        headers: {
          'content-type': 'application/json',
          'user-agent': 'provkey-webhooks/1',
          'webhook-id': id,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': signPayload(key, id, timestamp, body),
        },
        body,
      });
      await response.arrayBuffer().catch(() => undefined);
      if (response.status >= 200 && response.status < 300) return { url: target.url, type: event.type, id, ok: true, attempts: attempt };
      error = `HTTP ${response.status}`;
      // A 4xx other than timeout/throttling will not change on retry; a redirect is refused.
      const retryable = response.status >= 500 || response.status === 408 || response.status === 429;
      if (!retryable) return { url: target.url, type: event.type, id, ok: false, attempts: attempt, error };
    } catch (cause) {
      error = (cause as Error).name === 'TimeoutError' ? `timed out after ${target.timeoutMs} ms` : ((cause as Error & { cause?: Error }).cause?.message ?? (cause as Error).message);
    }
    if (attempt > target.retries) return { url: target.url, type: event.type, id, ok: false, attempts: attempt, error };
    await new Promise((resolve) => setTimeout(resolve, Math.min(target.backoffMs * 2 ** (attempt - 1), MAX_BACKOFF_MS)));
  }
}
