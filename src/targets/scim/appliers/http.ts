import type { ApplyResult, SecretInUse } from '../../target.js';
import type { HttpClient, HttpReply } from '../http-client.js';
import { oneLine } from '../redact.js';
import { scimErrorDetail } from '../scim-answers.js';
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

  async function post(request: TokenAction): Promise<ApplyResult> {
    // Cached once resolved; a failed resolution is not cached, so a fixed env var works on retry.
    const adminToken = await (admin ??= options.adminToken().catch((error: unknown) => {
      admin = undefined;
      throw error;
    }));
    const body: Record<string, string> = { action: request.action, token: request.token.value };
    if (request.action === 'replace') body.replaces = request.replaces.value;
    const secrets = [request.token, request.action === 'replace' ? request.replaces : undefined];
    const reply = await options.http.send({
      method: 'POST',
      url: options.url,
      bearer: adminToken,
      body,
      timeoutMs: options.timeoutMs,
      redact: secrets,
    });
    return applyResultOf(reply, `${request.action} ${request.token.fingerprint}`);
  }

  return {
    set: ({ next, current, replace }) =>
      post(replace && current ? { action: 'replace', token: next, replaces: current } : { action: 'add', token: next }),
    retire: ({ old }) => post({ action: 'remove', token: old }),
    async rollback({ next, current }) {
      // Remove first, then add: each step is idempotent, so a resumed rollback can repeat both.
      const removed = await post({ action: 'remove', token: next });
      if (!removed.ok || !current) return removed;
      return post({ action: 'add', token: current });
    },
  };
}

/**
 * 2xx ok; 401/403 denied; other 4xx rejected; 5xx error; network unreachable.
 * The reply was already scrubbed of the tokens by the HTTP client.
 */
export function applyResultOf(reply: HttpReply, what: string): ApplyResult {
  // Room for the prefix plus a 200-character server detail.
  const clean = (text: string): string => oneLine(text, 320);
  if (reply.kind === 'unreachable') {
    return { ok: false, reason: 'unreachable', detail: clean(`token endpoint unreachable (${what}): ${reply.message}`) };
  }
  if (reply.kind === 'failed') {
    return { ok: false, reason: 'error', detail: clean(`token endpoint (${what}): ${reply.code}: ${reply.message}`) };
  }
  const { status } = reply;
  if (status >= 200 && status < 300) return { ok: true, detail: `token endpoint: ${what}` };
  const answer = scimErrorDetail(reply.body, reply.text);
  const detail = clean(`token endpoint answered ${status} to ${what}${answer ? `: ${answer}` : ''}`);
  if (status === 401 || status === 403) return { ok: false, reason: 'denied', detail };
  if (status >= 400 && status < 500) return { ok: false, reason: 'rejected', detail };
  return { ok: false, reason: 'error', detail };
}
