import type { HttpClient, HttpReply, HttpRequest } from './http-client.js';

/**
 * 429 (and a 503 that says when to come back) means "not now", never "no": the request is
 * sent again after the server's Retry-After (RFC 9110 §10.2.3), within a bound, so a rate
 * limit is neither a rejection nor a reason to wait forever. When the bound runs out, the
 * last answer stands and the caller reports the target unreachable.
 */

/** The most one operation (a connection test, one applier step) waits for Retry-After in total. */
export const RETRY_AFTER_BUDGET_MS = 30_000;
/** A 429 without Retry-After is retried after this. */
const DEFAULT_429_WAIT_MS = 1000;
const MAX_ATTEMPTS = 6;

/** The time left for waiting on Retry-After, shared by the requests of one operation. */
export class RetryAfterBudget {
  readonly #deadline: number;
  constructor(budgetMs = RETRY_AFTER_BUDGET_MS, now = Date.now()) {
    this.#deadline = now + budgetMs;
  }
  remainingMs(now = Date.now()): number {
    return Math.max(0, this.#deadline - now);
  }
}

/** Retry-After as milliseconds from `now`: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** How long to wait before sending again, or undefined when this reply is final. */
export function retryWaitMs(reply: HttpReply): number | undefined {
  if (reply.kind !== 'response') return undefined;
  if (reply.status === 429) return reply.retryAfterMs ?? DEFAULT_429_WAIT_MS;
  if (reply.status === 503 && reply.retryAfterMs !== undefined) return reply.retryAfterMs;
  return undefined;
}

/**
 * Sends `request`, and again after each 429/503 Retry-After while the budget lasts. A wait
 * longer than what is left is not started: the answer is final now, and says so.
 */
export async function sendHonouringRetryAfter(http: HttpClient, request: HttpRequest, budget: RetryAfterBudget): Promise<HttpReply> {
  let reply = await http.send(request);
  for (let attempt = 1; attempt < MAX_ATTEMPTS; attempt++) {
    const wait = retryWaitMs(reply);
    if (wait === undefined) return reply;
    if (wait > budget.remainingMs()) return withGaveUp(reply, wait);
    await new Promise((resolve) => setTimeout(resolve, wait));
    reply = await http.send(request);
  }
  const wait = retryWaitMs(reply);
  return wait === undefined ? reply : withGaveUp(reply, wait);
}

function withGaveUp(reply: HttpReply, waitMs: number): HttpReply {
  return reply.kind === 'response' ? { ...reply, gaveUpWaitingMs: waitMs } : reply;
}
