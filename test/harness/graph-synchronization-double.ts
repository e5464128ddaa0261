// A Microsoft Graph synchronization double (one enterprise application's provisioning job),
// written from Microsoft's Graph v1.0 reference, because no Graph emulator exists here
// (entra-emulator issues real tokens but has no synchronization endpoints):
//
//   POST /v1.0/servicePrincipals/{id}/synchronization/jobs/{jobId}/validateCredentials
//        {useSavedCredentials, credentials:[{key,value}]}: like Entra's "Test Connection", it
//        REALLY calls the SCIM app at BaseAddress with SecretToken:
//        GET {BaseAddress}/Users?filter=externalId eq "<random GUID>", and answers 204 when the
//        app gives 200 with a ListResponse, else 400 with Graph's error shape;
//   PUT  /v1.0/servicePrincipals/{id}/synchronization/secrets {value:[{key,value}]} → 204
//        (keys merged by name); GET of the same answers every SecretToken masked;
//   GET  /v1.0/servicePrincipals/{id}/synchronization/jobs/{jobId} → status.code Active, or
//        Quarantine with status.quarantine.reason (quarantine() puts it there);
//   POST …/jobs/{jobId}/restart → 204, lifts a quarantine;
//   GET  /v1.0/auditLogs/provisioning?$filter=servicePrincipal/id eq '…' and activityDateTime ge …
//        → the provisioning cycles runCycle() ran, each success or failure (AuditLog.Read.All).
//
// Auth is as strict as Graph's: every call needs a bearer token whose audience is this Graph
// origin and whose `roles` hold the permission the call needs (Synchronization.ReadWrite.All,
// or Application.ReadWrite.OwnedBy for an owner of the service principal; AuditLog.Read.All
// for logs); otherwise 401 InvalidAuthenticationToken / 403 Authorization_RequestDenied. Tokens
// come from its own client-credentials endpoint, signed HS256 with the key it is given
// (`signingKey`), or, when PROVKEY_TEST_ENTRA_EMULATOR names entra-emulator and the test passes
// its `jwksUrl`/`issuer`, RS256 tokens issued by the emulator are checked against its JWKS.
// Faults: throttleNext (429 + Retry-After), failNext (503), both in Graph's error shape.
//
// Erasable TypeScript only; node: built-ins plus the openssl CLI (a throw-away certificate).

import { spawnSync } from 'node:child_process';
import { createHmac, createPublicKey, createVerify, randomBytes, randomUUID, timingSafeEqual, type JsonWebKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const GRAPH_DOUBLE_TENANT = '5f0a6b1e-3c4d-4e8f-9a0b-1c2d3e4f5a6b';
const WRITE_ROLES = ['Synchronization.ReadWrite.All', 'Application.ReadWrite.OwnedBy'];

export interface GraphSynchronizationDouble {
  /** https://127.0.0.1:PORT/v1.0: the consumer's graphUrl. */
  graphUrl: string;
  /** https://127.0.0.1:PORT: the consumer's authorityHost (this double's own token endpoint). */
  authorityHost: string;
  tenantId: string;
  caFile: string;
  servicePrincipalId: string;
  jobId: string;
  /** Registers a confidential client with its app roles; `owner` makes Application.ReadWrite.OwnedBy count. */
  addClient(clientId: string, secret: string, roles: string[], options?: { owner?: boolean }): void;
  /** Test-only: the SecretToken the job holds (Graph itself never returns it). */
  savedToken(): string | undefined;
  savedBaseAddress(): string | undefined;
  /** Saves secrets as the portal would (the job's starting token). */
  saveSecrets(pairs: Record<string, string>): void;
  quarantine(reason: string): void;
  /** One provisioning cycle: the job calls the SCIM app with its saved token; recorded in the provisioning logs. */
  runCycle(): Promise<'success' | 'failure'>;
  /** The next `n` Graph requests answer 429 with Retry-After (seconds). */
  throttleNext(n: number, retryAfterSeconds?: number): void;
  /** The next `n` Graph requests answer 503 ServiceUnavailable (with Retry-After 0). */
  failNext(n: number): void;
  /** Graph calls as "METHOD path", in order (never a body). */
  calls: string[];
  stop(): Promise<void>;
}

export interface GraphDoubleOptions {
  /** HS256 key the double signs and checks its own tokens with (default: random). */
  signingKey?: Buffer;
  /**
   * entra-emulator's JWKS and issuer: its RS256 tokens are accepted too (the emulator tier). The
   * emulator's tokens carry no Graph app roles, so `grants` says which client (appid/azp) holds which.
   */
  entraEmulator?: { jwksUrl: string; issuer: string; ca: string; grants: Record<string, string[]> };
}

interface Claims {
  aud: string;
  exp: number;
  appid: string;
  roles: string[];
}

export async function startGraphSynchronizationDouble(options: GraphDoubleOptions = {}): Promise<GraphSynchronizationDouble> {
  const dir = mkdtempSync(join(tmpdir(), 'provkey-graph-double-'));
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`openssl could not make the double's certificate: ${made.stderr}`);

  const signingKey = options.signingKey ?? randomBytes(32);
  const servicePrincipalId = randomUUID();
  const jobId = `scim.${randomBytes(8).toString('hex')}.${randomUUID()}`;
  const clients = new Map<string, { secret: string; roles: string[]; owner: boolean }>();
  const secrets = new Map<string, string>();
  const logs: Array<{ id: string; activityDateTime: string; servicePrincipal: { id: string }; statusInfo: { status: 'success' | 'failure'; errorInformation?: { errorCode: string } } }> = [];
  let quarantine: string | undefined;
  let throttle = 0;
  let throttleAfter = 1;
  let fail = 0;
  let origin = '';
  const calls: string[] = [];
  const now = () => Math.floor(Date.now() / 1000);

  const sign = (claims: Claims) => {
    const head = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
    const body = Buffer.from(JSON.stringify({ ...claims, iss: `${origin}/${GRAPH_DOUBLE_TENANT}/v2.0`, tid: GRAPH_DOUBLE_TENANT, iat: now() })).toString('base64url');
    return `${head}.${body}.${createHmac('sha256', signingKey).update(`${head}.${body}`).digest('base64url')}`;
  };

  let jwks: Promise<JsonWebKey[]> | undefined;
  const emulatorKeys = () =>
    (jwks ??= new Promise<JsonWebKey[]>((resolve, reject) => {
      const e = options.entraEmulator!;
      https
        .get(e.jwksUrl, { ca: e.ca }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve((JSON.parse(text) as { keys: JsonWebKey[] }).keys));
        })
        .on('error', reject);
    }));

  /** The token's claims when its signature, expiry and audience hold; undefined otherwise. */
  const verify = async (token: string): Promise<Claims | undefined> => {
    const [head, body, signature] = token.split('.');
    if (!head || !body || !signature) return undefined;
    let header: { alg?: string; kid?: string };
    let claims: Claims & { iss?: string; azp?: string };
    try {
      header = JSON.parse(Buffer.from(head, 'base64url').toString('utf8'));
      claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    } catch {
      return undefined;
    }
    if (header.alg === 'HS256') {
      const expected = createHmac('sha256', signingKey).update(`${head}.${body}`).digest();
      const given = Buffer.from(signature, 'base64url');
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    } else if (header.alg === 'RS256' && options.entraEmulator) {
      const jwk = (await emulatorKeys()).find((k) => (k as { kid?: string }).kid === header.kid);
      if (!jwk || claims.iss !== options.entraEmulator.issuer) return undefined;
      const ok = createVerify('RSA-SHA256').update(`${head}.${body}`).verify(createPublicKey({ key: jwk, format: 'jwk' }), Buffer.from(signature, 'base64url'));
      if (!ok) return undefined;
      const client = claims.appid ?? claims.azp ?? '';
      claims = { ...claims, appid: client, roles: options.entraEmulator.grants[client] ?? [] };
    } else {
      return undefined;
    }
    const audiences = [origin, `${origin}/`, 'https://graph.microsoft.com', '00000003-0000-0000-c000-000000000000'];
    if (!(claims.exp > now()) || !audiences.includes(claims.aud)) return undefined;
    return { ...claims, roles: Array.isArray(claims.roles) ? claims.roles : [] };
  };

  const server = https.createServer({ key: readFileSync(keyFile), cert: readFileSync(certFile) }, (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      handle(req, res, body).catch((error: unknown) => graphError(res, 500, 'InternalServerError', (error as Error).message));
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, body: string): Promise<void> {
    const url = new URL(req.url ?? '/', origin);
    const path = url.pathname;
    const method = req.method ?? 'GET';

    // --- the authority: discovery and client credentials ---
    if (path === `/${GRAPH_DOUBLE_TENANT}/v2.0/.well-known/openid-configuration`) {
      const base = `${origin}/${GRAPH_DOUBLE_TENANT}`;
      return send(res, 200, {
        issuer: `${base}/v2.0`,
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        token_endpoint: `${base}/oauth2/v2.0/token`,
        end_session_endpoint: `${base}/oauth2/v2.0/logout`,
        jwks_uri: `${base}/discovery/v2.0/keys`,
        response_types_supported: ['code'],
        token_endpoint_auth_methods_supported: ['client_secret_post'],
      });
    }
    if (path === `/${GRAPH_DOUBLE_TENANT}/oauth2/v2.0/token` && method === 'POST') {
      const form = new URLSearchParams(body);
      const clientId = form.get('client_id') ?? '';
      const client = clients.get(clientId);
      if (form.get('grant_type') !== 'client_credentials') return send(res, 400, { error: 'unsupported_grant_type', error_description: 'AADSTS70003: unsupported grant type' });
      if (!client || client.secret !== form.get('client_secret')) {
        return send(res, 401, { error: 'invalid_client', error_description: `AADSTS7000215: Invalid client secret provided for app '${clientId}'.`, error_codes: [7000215] });
      }
      const scope = form.get('scope') ?? '';
      if (!scope.endsWith('/.default')) return send(res, 400, { error: 'invalid_scope', error_description: 'AADSTS1002012: the scope must end in /.default' });
      const roles = client.owner ? client.roles : client.roles.filter((r) => r !== 'Application.ReadWrite.OwnedBy');
      return send(res, 200, { token_type: 'Bearer', expires_in: 3600, ext_expires_in: 3600, access_token: sign({ aud: scope.slice(0, -'/.default'.length), exp: now() + 3600, appid: clientId, roles }) });
    }

    // --- Graph ---
    calls.push(`${method} ${path}`);
    if (throttle > 0) {
      throttle--;
      res.setHeader('Retry-After', String(throttleAfter));
      return graphError(res, 429, 'TooManyRequests', 'Too many requests. Please retry after the time specified in the Retry-After header.');
    }
    if (fail > 0) {
      fail--;
      res.setHeader('Retry-After', '0');
      return graphError(res, 503, 'ServiceUnavailable', 'The service is temporarily unavailable.');
    }
    const auth = req.headers.authorization;
    const claims = auth?.startsWith('Bearer ') ? await verify(auth.slice('Bearer '.length)) : undefined;
    if (!claims) return graphError(res, 401, 'InvalidAuthenticationToken', auth ? 'Access token validation failure. Invalid audience.' : 'Access token is empty.');

    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    if (parts[0] !== 'v1.0') return graphError(res, 400, 'BadRequest', 'Invalid version.');
    if (parts[1] === 'auditLogs' && parts[2] === 'provisioning' && parts.length === 3 && method === 'GET') {
      if (!claims.roles.includes('AuditLog.Read.All')) return graphError(res, 403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
      return send(res, 200, { '@odata.context': `${origin}/v1.0/$metadata#auditLogs/provisioning`, value: filterLogs(url.searchParams.get('$filter') ?? '') });
    }
    if (parts[1] !== 'servicePrincipals' || parts[3] !== 'synchronization') return graphError(res, 400, 'BadRequest', `Resource not found for the segment '${parts[1] ?? ''}'.`);
    if (parts[2] !== servicePrincipalId) return graphError(res, 404, 'Request_ResourceNotFound', `Resource '${parts[2]}' does not exist or one of its queried reference-property objects are not present.`);
    if (!claims.roles.some((r) => WRITE_ROLES.includes(r))) return graphError(res, 403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');

    if (parts[4] === 'secrets' && parts.length === 5) {
      if (method === 'PUT') {
        const pairs = parsePairs(body, 'value');
        if (!pairs) return graphError(res, 400, 'BadRequest', 'The request body must hold "value": an array of {key, value}.');
        for (const { key, value } of pairs) secrets.set(key, value);
        res.writeHead(204).end();
        return;
      }
      if (method === 'GET') return send(res, 200, { value: [...secrets].map(([key, value]) => ({ key, value: key === 'SecretToken' ? '*****' : value })) });
    }
    if (parts[4] === 'jobs' && parts[5] !== undefined) {
      if (parts[5] !== jobId) return graphError(res, 404, 'ResourceNotFound', `The synchronization job '${parts[5]}' was not found.`);
      if (parts.length === 6 && method === 'GET') return send(res, 200, jobBody());
      if (parts[6] === 'restart' && method === 'POST') {
        quarantine = undefined;
        res.writeHead(204).end();
        return;
      }
      if (parts[6] === 'validateCredentials' && method === 'POST') return validateCredentials(res, body);
    }
    return graphError(res, 400, 'BadRequest', `No HTTP resource was found that matches the request URI '${path}'.`);
  }

  async function validateCredentials(res: http.ServerResponse, body: string): Promise<void> {
    let request: { useSavedCredentials?: boolean; credentials?: unknown };
    try {
      request = JSON.parse(body);
    } catch {
      return graphError(res, 400, 'BadRequest', 'The request body is not JSON.');
    }
    const given = request.useSavedCredentials === true ? new Map(secrets) : new Map((parsePairs(body, 'credentials') ?? []).map((p) => [p.key, p.value]));
    const base = given.get('BaseAddress');
    const token = given.get('SecretToken');
    if (!base || !token) return graphError(res, 400, 'BadRequest', 'BaseAddress and SecretToken are required.');
    const answer = await testConnection(base, token);
    if (answer === 200) {
      res.writeHead(204).end();
      return;
    }
    // The portal's wording for a failed Test Connection; the token itself never appears.
    const why = answer === 'unreachable' ? 'We could not reach the tenant URL: the connection was refused or timed out.' : `You appear to have entered invalid credentials. We received this unexpected response from your application: HTTP ${answer}.`;
    return graphError(res, 400, answer === 'unreachable' ? 'SystemForCrossDomainIdentityManagementCredentialValidationUnavailable' : 'SystemForCrossDomainIdentityManagementCredentialValidationUnauthorized', why);
  }

  /** Entra's test connection: a user query by a random GUID; 200 with a ListResponse passes. */
  function testConnection(base: string, token: string): Promise<number | 'unreachable'> {
    const target = new URL(`${base.replace(/\/+$/, '')}/Users`);
    target.searchParams.set('filter', `externalId eq "${randomUUID()}"`);
    return new Promise((resolve) => {
      const get = target.protocol === 'https:' ? https.get : http.get;
      const req = get(target, { headers: { authorization: `Bearer ${token}`, accept: 'application/scim+json' }, timeout: 10_000 }, (r) => {
        let text = '';
        r.setEncoding('utf8');
        r.on('data', (c: string) => (text += c));
        r.on('end', () => {
          if (r.statusCode !== 200) return resolve(r.statusCode ?? 0);
          try {
            const list = JSON.parse(text) as { schemas?: string[] };
            resolve(list.schemas?.includes('urn:ietf:params:scim:api:messages:2.0:ListResponse') ? 200 : 502);
          } catch {
            resolve(502);
          }
        });
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve('unreachable'));
    });
  }

  function jobBody() {
    return {
      id: jobId,
      templateId: 'scim',
      schedule: { expiration: null, interval: 'PT40M', state: 'Active' },
      status: {
        code: quarantine ? 'Quarantine' : 'Active',
        countSuccessiveCompleteFailures: quarantine ? 1 : 0,
        escrowsPruned: false,
        quarantine: quarantine ? { currentBegan: new Date().toISOString(), nextAttempt: new Date(Date.now() + 3600_000).toISOString(), reason: quarantine, seriesBegan: new Date().toISOString(), seriesCount: 1 } : null,
      },
    };
  }

  function filterLogs(filter: string) {
    const sp = /servicePrincipal\/id eq '([^']+)'/.exec(filter)?.[1];
    const since = /activityDateTime ge (\S+)/.exec(filter)?.[1];
    return logs.filter((l) => (!sp || l.servicePrincipal.id === sp) && (!since || l.activityDateTime >= since));
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  origin = `https://127.0.0.1:${(server.address() as { port: number }).port}`;

  return {
    graphUrl: `${origin}/v1.0`,
    authorityHost: origin,
    tenantId: GRAPH_DOUBLE_TENANT,
    caFile: certFile,
    servicePrincipalId,
    jobId,
    addClient: (clientId, secret, roles, opts = {}) => void clients.set(clientId, { secret, roles, owner: opts.owner ?? false }),
    savedToken: () => secrets.get('SecretToken'),
    savedBaseAddress: () => secrets.get('BaseAddress'),
    saveSecrets: (pairs) => {
      for (const [key, value] of Object.entries(pairs)) secrets.set(key, value);
    },
    quarantine: (reason) => void (quarantine = reason),
    async runCycle() {
      const base = secrets.get('BaseAddress');
      const token = secrets.get('SecretToken');
      const answer = base && token ? await testConnection(base, token) : 'unreachable';
      const status = answer === 200 ? 'success' : 'failure';
      logs.push({
        id: randomUUID(),
        activityDateTime: new Date().toISOString(),
        servicePrincipal: { id: servicePrincipalId },
        statusInfo: status === 'success' ? { status } : { status, errorInformation: { errorCode: answer === 'unreachable' ? 'SystemForCrossDomainIdentityManagementServiceUnavailable' : 'SystemForCrossDomainIdentityManagementCredentialValidationUnauthorized' } },
      });
      return status;
    },
    throttleNext: (n, retryAfterSeconds = 1) => {
      throttle = n;
      throttleAfter = retryAfterSeconds;
    },
    failNext: (n) => void (fail = n),
    calls,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        });
      }),
  };
}

function parsePairs(body: string, field: string): Array<{ key: string; value: string }> | undefined {
  try {
    const list = (JSON.parse(body) as Record<string, unknown>)[field];
    if (!Array.isArray(list)) return undefined;
    if (!list.every((p) => typeof p?.key === 'string' && typeof p?.value === 'string')) return undefined;
    return list as Array<{ key: string; value: string }>;
  } catch {
    return undefined;
  }
}

/** Graph's error shape: {"error":{"code","message","innerError":{date,request-id,client-request-id}}}. */
function graphError(res: http.ServerResponse, status: number, code: string, message: string): void {
  const id = randomUUID();
  send(res, status, { error: { code, message, innerError: { date: new Date().toISOString(), 'request-id': id, 'client-request-id': id } } });
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
