import { endpointUrl } from './endpoint-url.js';
import type { HttpClient, HttpReply, HttpRequest } from './http-client.js';
import { RetryAfterBudget, sendHonouringRetryAfter } from './retry-after.js';

/** The SCIM service provider as the probes see it: base URL + HTTP client + per-request timeout. */
export interface ScimEndpoint {
  request(
    method: HttpRequest['method'],
    path: string,
    options: { bearer: string; query?: Record<string, string>; body?: unknown },
  ): Promise<HttpReply>;
}

export const SCIM_MEDIA_TYPE = 'application/scim+json';

/**
 * `budget` bounds the Retry-After waits of every request made through this endpoint: give
 * each connection test its own, so a rate-limited app costs one bounded wait per test.
 */
export function scimEndpoint(base: URL, http: HttpClient, timeoutMs: number, budget = new RetryAfterBudget()): ScimEndpoint {
  return {
    request(method, path, options) {
      return sendHonouringRetryAfter(
        http,
        {
          method,
          url: endpointUrl(base, path, options.query),
          bearer: options.bearer,
          body: options.body,
          timeoutMs,
          mediaType: SCIM_MEDIA_TYPE,
        },
        budget,
      );
    },
  };
}
