// An Okta Application Connections double (one app's default provisioning connection), written
// from Okta's Management API reference (Application Connections):
//
//   POST /api/v1/apps/{appId}/connections/default?activate=true
//        {authScheme: "TOKEN", token, baseUrl}: with activate=true Okta tests the connection
//        before it keeps it; here that test REALLY calls the SCIM app at baseUrl with the token,
//        as Okta's SCIM connector does (GET /Users?startIndex=1&count=2); a refusal is a 400
//        E0000001 and the connection stays as it was;
//   GET  /api/v1/apps/{appId}/connections/default → {authScheme, baseUrl, status, profile}: the
//        token is never returned.
//
// Strict like Okta: `Authorization: SSWS <api token>` (401 E0000011 otherwise), the token's admin
// must manage apps (403 E0000006), unknown apps 404 E0000007, bodies checked (400 E0000003).
// Faults: throttleNext (429 with X-Rate-Limit-Reset and Retry-After).
// Erasable TypeScript only; node: built-ins only.

import { randomBytes } from 'node:crypto';
import http from 'node:http';

export interface OktaConnectionsDouble {
  orgUrl: string;
  appId: string;
  /** An API token that may manage the app's connection. */
  apiToken: string;
  /** An API token of a read-only admin: refused with 403. */
  readOnlyToken: string;
  /** Test-only: the token the connection holds (Okta never returns it). */
  connectionToken(): string | undefined;
  connectionBaseUrl(): string | undefined;
  status(): 'ENABLED' | 'DISABLED';
  disable(): void;
  throttleNext(n: number): void;
  stop(): Promise<void>;
}

export async function startOktaConnectionsDouble(): Promise<OktaConnectionsDouble> {
  const appId = `0oa${randomBytes(8).toString('hex')}`;
  const apiToken = `00${randomBytes(20).toString('base64url')}`;
  const readOnlyToken = `00${randomBytes(20).toString('base64url')}`;
  let connection: { token: string; baseUrl: string; status: 'ENABLED' | 'DISABLED' } | undefined;
  let throttle = 0;

  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      handle(req, res, body).catch((error: unknown) => oktaError(res, 500, 'E0000009', `Internal Server Error: ${(error as Error).message}`));
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, body: string): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (throttle > 0) {
      throttle--;
      res.setHeader('Retry-After', '0');
      res.setHeader('X-Rate-Limit-Reset', String(Math.floor(Date.now() / 1000)));
      return oktaError(res, 429, 'E0000047', 'API call exceeded rate limit due to too many requests.');
    }
    const auth = req.headers.authorization ?? '';
    const given = auth.startsWith('SSWS ') ? auth.slice(5) : undefined;
    if (given !== apiToken && given !== readOnlyToken) return oktaError(res, 401, 'E0000011', 'Invalid token provided');
    const match = /^\/api\/v1\/apps\/([^/]+)\/connections\/default$/.exec(url.pathname);
    if (!match) return oktaError(res, 404, 'E0000022', 'The endpoint does not support the provided HTTP method');
    if (decodeURIComponent(match[1]!) !== appId) return oktaError(res, 404, 'E0000007', `Not found: Resource not found: ${match[1]} (AppInstance)`);
    if (req.method === 'GET') {
      if (!connection) return send(res, 200, { authScheme: 'TOKEN', baseUrl: null, status: 'DISABLED', profile: { authScheme: 'TOKEN' } });
      return send(res, 200, { authScheme: 'TOKEN', baseUrl: connection.baseUrl, status: connection.status, profile: { authScheme: 'TOKEN' } });
    }
    if (req.method !== 'POST') return oktaError(res, 405, 'E0000022', 'The endpoint does not support the provided HTTP method');
    if (given === readOnlyToken) return oktaError(res, 403, 'E0000006', 'You do not have permission to perform the requested action');
    let request: { authScheme?: unknown; token?: unknown; baseUrl?: unknown };
    try {
      request = JSON.parse(body);
    } catch {
      return oktaError(res, 400, 'E0000003', 'The request body was not well-formed.');
    }
    if (request.authScheme !== 'TOKEN' || typeof request.token !== 'string' || typeof request.baseUrl !== 'string') {
      return oktaError(res, 400, 'E0000001', 'Api validation failed: authScheme, token, baseUrl', [{ errorSummary: 'authScheme must be TOKEN with a token and a baseUrl' }]);
    }
    if (url.searchParams.get('activate') === 'true') {
      const answer = await testConnection(request.baseUrl, request.token);
      if (answer !== 200) return oktaError(res, 400, 'E0000001', 'Api validation failed: connection', [{ errorSummary: `The connection test failed: the app answered ${answer}` }]);
    }
    connection = { token: request.token, baseUrl: request.baseUrl, status: url.searchParams.get('activate') === 'true' ? 'ENABLED' : (connection?.status ?? 'DISABLED') };
    return send(res, 201, { authScheme: 'TOKEN', baseUrl: connection.baseUrl, status: connection.status, profile: { authScheme: 'TOKEN' } });
  }

  function testConnection(baseUrl: string, token: string): Promise<number | 'unreachable'> {
    const target = new URL(`${baseUrl.replace(/\/+$/, '')}/Users?startIndex=1&count=2`);
    return new Promise((resolve) => {
      const req = http.get(target, { headers: { authorization: `Bearer ${token}`, accept: 'application/scim+json' }, timeout: 10_000 }, (r) => {
        r.resume();
        r.on('end', () => resolve(r.statusCode ?? 0));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve('unreachable'));
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const orgUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    orgUrl,
    appId,
    apiToken,
    readOnlyToken,
    connectionToken: () => connection?.token,
    connectionBaseUrl: () => connection?.baseUrl,
    status: () => connection?.status ?? 'DISABLED',
    disable: () => {
      if (connection) connection.status = 'DISABLED';
    },
    throttleNext: (n) => void (throttle = n),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function oktaError(res: http.ServerResponse, status: number, code: string, summary: string, causes: Array<{ errorSummary: string }> = []): void {
  send(res, status, { errorCode: code, errorSummary: summary, errorLink: code, errorId: `oae${randomBytes(10).toString('hex')}`, errorCauses: causes });
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
