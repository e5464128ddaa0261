import type { ApplyResult, SecretInUse } from '../../target.js';
import type { HttpClient, HttpReply } from '../http-client.js';
import { oneLine } from '../redact.js';
import { RetryAfterBudget, sendHonouringRetryAfter } from '../retry-after.js';
import { describeReply, isServiceUnavailable, scimErrorDetail } from '../scim-answers.js';
import type { TokenApplier } from './applier.js';

/**
 * A token endpoint in the app: POST {"action":"add"|"remove"|"replace","token","replaces"}
 * with an admin bearer token. The admin token is resolved on first use, so `provkey test`
 * works without it.
 */
export interface HttpApplierOptions {
  url: URL;
  timeoutMs: number;
  http: HttpClient;
  adminToken: () => Promise<string>;
}

type TokenAction =
  | { action: 'add'; token: SecretInUse }
  | { action: 'remove'; token: SecretInUse }
  | { action: 'replace'; token: SecretInUse; replaces: SecretInUse };

export function createHttpApplier(options: HttpApplierOptions): TokenApplier {
  let admin: Promise<string> | undefined;

  /** `budget`: the Retry-After waits of one applier step (a rollback's two requests share one). */
  async function post(request: TokenAction, budget = new RetryAfterBudget()): Promise<ApplyResult> {
    // Cached once resolved; a failed resolution is not cached, so a fixed env var works on retry.
    const adminToken = await (admin ??= options.adminToken().catch((error: unknown) => {
      admin = undefined;
      throw error;
    }));
    const body: Record<string, string> = { action: request.action, token: request.token.value };
    if (request.action === 'replace') body.replaces = request.replaces.value;
    const secrets = [request.token, request.action === 'replace' ? request.replaces : undefined];
    const post = { method: 'POST', url: options.url, bearer: adminToken, body, timeoutMs: options.timeoutMs, redact: secrets } as const;
    // A 429 is "not now": every action is idempotent, so it is sent again after Retry-After.
    const reply = await sendHonouringRetryAfter(options.http, post, budget);
    return applyResultOf(reply, `${request.action} ${request.token.fingerprint}`);
  }

  // Tokens a `replace` of this run already removed: retiring one again would repeat the replace.
  // Only this run's own answers count; a resumed run (which has none) sends the remove.
  const replacedAway = new Set<string>();

  return {
    async set({ next, current, replace }) {
      if (!(replace && current)) return post({ action: 'add', token: next });
      const replaced = await post({ action: 'replace', token: next, replaces: current });
      if (replaced.ok) replacedAway.add(current.value);
      return replaced;
    },
    async retire({ old }) {
      // The engine still proves the rejection with the old token itself (per key).
      if (replacedAway.has(old.value)) return { ok: true, detail: `token endpoint: ${old.fingerprint} was removed by this run's replace` };
      return post({ action: 'remove', token: old });
    },
    async rollback({ next, current }) {
      // Remove first, then add: each step is idempotent, so a resumed rollback can repeat both.
      const budget = new RetryAfterBudget();
      const removed = await post({ action: 'remove', token: next }, budget);
      if (!removed.ok || !current) return removed;
      // Whatever the add answers, `current` may be accepted again: a later retire must remove it.
      replacedAway.delete(current.value);
      return post({ action: 'add', token: current }, budget);
    },
  };
}

/**
 * 2xx ok; 401/403 denied; other 4xx rejected; 429 (past Retry-After), 5xx, network and TLS
 * unreachable: the app could not act now, which says nothing about the token, so the engine
 * keeps its state and a later run resumes. The reply was already scrubbed of the tokens.
 */
export function applyResultOf(reply: HttpReply, what: string): ApplyResult {
  // Room for the prefix plus a 200-character server detail.
  const clean = (text: string): string => oneLine(text, 320);
  if (reply.kind === 'unreachable') {
    return { ok: false, reason: 'unreachable', detail: clean(`token endpoint unreachable (${what}): ${describeReply(reply).replace(/^unreachable: /, '')}`) };
  }
  if (reply.kind === 'failed') {
    return { ok: false, reason: 'error', detail: clean(`token endpoint (${what}): ${reply.code}: ${reply.message}`) };
  }
  const { status } = reply;
  if (status >= 200 && status < 300) return { ok: true, detail: `token endpoint: ${what}` };
  const answer = scimErrorDetail(reply.body, reply.text);
  const detail = clean(`token endpoint answered ${status} to ${what}${answer ? `: ${answer}` : ''}`);
  if (status === 401 || status === 403) return { ok: false, reason: 'denied', detail };
  if (isServiceUnavailable(reply)) {
    const waited = reply.gaveUpWaitingMs === undefined ? '' : ` (Retry-After ${Math.ceil(reply.gaveUpWaitingMs / 1000)}s is past provkey's bound)`;
    return { ok: false, reason: 'unreachable', detail: clean(`${detail}${waited}`) };
  }
  if (status >= 400 && status < 500) return { ok: false, reason: 'rejected', detail };
  return { ok: false, reason: 'error', detail };
}
