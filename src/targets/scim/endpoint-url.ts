import { ConfigError } from '../../core/errors.js';
import { isLoopbackHost } from '../../core/loopback.js';

/**
 * Checks a configured endpoint URL (the SCIM base URL or a token endpoint) against the TLS
 * rule of DESIGN.md: https everywhere, plain http only to loopback or when the config says
 * so. Throws a ConfigError naming `field`; runs at target creation, before any I/O.
 */
export function parseEndpointUrl(raw: string, field: string, allowInsecureHttp: boolean): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${field}: not an absolute URL (e.g. https://app.example.com/scim/v2)`);
  }
  // A URL with user:password@ would put a credential into every log line that names it.
  if (url.username || url.password) {
    throw new ConfigError(`${field}: must not contain credentials (user:password@); use the key's token instead`);
  }
  if (url.search || url.hash) {
    throw new ConfigError(`${field}: ${url.origin}${url.pathname} must not have a query (?) or fragment (#)`);
  }
  if (url.protocol === 'https:') return url;
  if (url.protocol !== 'http:') {
    throw new ConfigError(`${field}: scheme ${url.protocol} is not supported (use https://)`);
  }
  if (!isLoopbackHost(url.hostname) && !allowInsecureHttp) {
    throw new ConfigError(
      `${field}: ${url.origin} is plain http to a non-loopback host; use https://, or set allowInsecureHttp: true`,
      'config.insecure',
    );
  }
  return url;
}

/** `base` + `path` (+ query), keeping the base path: /scim/v2 + /Users → /scim/v2/Users. */
export function endpointUrl(base: URL, path: string, query?: Record<string, string>): URL {
  const url = new URL(base.href);
  url.pathname = url.pathname.replace(/\/+$/, '') + path;
  if (query) {
    // %20 rather than URLSearchParams' "+": strict RFC 3986 servers do not decode "+" as a space.
    url.search = Object.entries(query)
      .map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(value)}`)
      .join('&');
  }
  return url;
}
