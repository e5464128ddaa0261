import { endpointUrl } from './endpoint-url.js';
import type { HttpClient, HttpReply, HttpRequest } from './http-client.js';

/** The SCIM service provider as the probes see it: base URL + HTTP client + per-request timeout. */
export interface ScimEndpoint {
  request(
    method: HttpRequest['method'],
    path: string,
    options: { bearer: string; query?: Record<string, string>; body?: unknown },
  ): Promise<HttpReply>;
}

export const SCIM_MEDIA_TYPE = 'application/scim+json';

export function scimEndpoint(base: URL, http: HttpClient, timeoutMs: number): ScimEndpoint {
  return {
    request(method, path, options) {
      return http.send({
        method,
        url: endpointUrl(base, path, options.query),
        bearer: options.bearer,
        body: options.body,
        timeoutMs,
        mediaType: SCIM_MEDIA_TYPE,
      });
    },
  };
}
