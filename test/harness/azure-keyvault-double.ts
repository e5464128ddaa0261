// A Key Vault protocol double (secrets only), written from Microsoft's REST reference
// (https://learn.microsoft.com/rest/api/keyvault/secrets/) for machines without the
// third-party emulator pair (test/harness/servers/azure-emulators.ts). It is as strict as real
// Key Vault where provkey depends on it, and is kept honest by running the same contract suite
// against it and against the emulator (test/integration/store-azure.test.ts):
//
//   - challenge auth: a request without a token gets 401 + WWW-Authenticate naming the
//     authority and resource; tokens come from its own client-credentials and App-Service
//     managed-identity endpoints and are checked for audience https://vault.azure.net and expiry;
//   - names ^[0-9a-zA-Z-]{1,127}$, case-insensitive; ≤ 15 tags (name 512 / value 256 chars);
//     values ≤ 25 KB; api-version required;
//   - createdOn/updated in whole seconds; versions listed oldest first with SAME-SECOND TIES IN
//     RANDOM ORDER (a client must not rely on list order); pages of 25 with nextLink;
//   - no ETag / compare-and-set; PATCH replaces the whole tag map;
//   - a disabled version answers 403 Forbidden, also as "latest";
//   - soft delete: DELETE makes the name deleted-but-recoverable (409 on set); deletion and
//     purge are asynchronous: the next request on the name answers 409 ObjectIsBeingDeleted
//     (GET deletedsecrets 404) once before the change is done;
//   - a per-principal permission map (access-policy names; PATCH needs secrets/set as in Azure);
//   - faults: throttle (429 + Retry-After) or fail (500) the next N requests;
//   - a version whose exp has passed (or nbf not come) answers 403 on get, as the emulator does.
//
// One opt-in departure, for the fault matrix only: `strictClock` gives every new version of a
// secret a createdOn at least one second after the secret's previous version (the clock runs
// ahead of real time as needed). Real Key Vault promises nothing of the kind; a store configured
// with `emulator.strictlyIncreasingCreatedOn` relies on it to decide a fork without waiting
// (src/stores/azure/chain.ts), and checks it on every listing.
//
// Erasable TypeScript only; node: built-ins plus the openssl CLI (for a throw-away certificate).

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const DOUBLE_TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const VAULT_AUDIENCES = ['https://vault.azure.net', 'https://vault.azure.net/'];
const NAME = /^[0-9a-zA-Z-]{1,127}$/;
const PAGE = 25;

export interface KeyVaultDouble {
  vaultUrl: string;
  authorityHost: string;
  tenantId: string;
  caFile: string;
  identityEndpoint: string;
  identityHeader: string;
  /** Registers a confidential client (client credentials). */
  addClient(clientId: string, secret: string): void;
  /** Restricts principals (client ids) to operations like "secrets/get"; {} restores full access. */
  setPermissions(map: Record<string, string[]>): void;
  /** The next `n` Key Vault requests answer 429 with `Retry-After: retryAfter` (seconds). */
  throttleNext(n: number, retryAfter?: number): void;
  failNext(n: number): void;
  /** The next `n` Key Vault requests never get an answer (a hung server), until stop(). */
  stallNext(n: number): void;
  /** Every token issued so far expires now, and (while `on`) new ones are issued already expired. */
  expireTokens(on?: boolean): void;
  /** Stops the double's clock at the current second (or lets it run again), as the emulator's /_emulator/clock {freeze} does. */
  freezeClock(on: boolean): void;
  /** Issues a token for another audience (a Graph token), for negative tests. */
  tokenForAudience(clientId: string, audience: string): string;
  /** The raw state of one secret: its versions oldest first, for assertions. */
  versionsOf(name: string): Array<{ id: string; enabled: boolean; tags: Record<string, string>; value: string; created: number; exp?: number }>;
  requests: number;
  stop(): Promise<void>;
}

interface Version {
  id: string;
  value: string;
  enabled: boolean;
  created: number;
  updated: number;
  tags: Record<string, string>;
  contentType?: string;
  exp?: number;
  nbf?: number;
  order: number;
  tieRank: number;
}
interface Secret {
  name: string;
  versions: Version[];
  /** deleted-but-recoverable since (seconds), or undefined when active. */
  deletedDate?: number;
  /** Requests on this name still to be refused while a delete or purge "runs". */
  pending?: 'deleting' | 'purging';
}

export async function startKeyVaultDouble(options: { strictClock?: boolean } = {}): Promise<KeyVaultDouble> {
  const dir = mkdtempSync(join(tmpdir(), 'provkey-kv-double-'));
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:*.vault.azure.net'], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`openssl could not make the double's certificate: ${made.stderr}`);

  const secrets = new Map<string, Secret>();
  const clients = new Map<string, string>();
  const tokens = new Map<string, { sub: string; aud: string; exp: number }>();
  let permissions: Record<string, string[]> = {};
  let throttle = 0;
  let throttleAfter = 1;
  let fail = 0;
  let stall = 0;
  let order = 0;
  let expired = false;
  const identityHeader = randomBytes(16).toString('hex');
  let frozenAt: number | undefined;
  const now = () => frozenAt ?? Math.floor(Date.now() / 1000);
  let origin = '';

  const issue = (sub: string, aud: string) => {
    const token = `dbl.${randomBytes(24).toString('base64url')}`;
    tokens.set(token, { sub, aud, exp: expired ? now() - 60 : now() + 3600 });
    return token;
  };

  const server: Server = createServer({ key: readFileSync(keyFile), cert: readFileSync(certFile) }, (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      double.requests++;
      try {
        handle(req, res, body);
      } catch (error) {
        send(res, 500, { error: { code: 'InternalError', message: (error as Error).message } });
      }
    });
  });

  function handle(req: IncomingMessage, res: ServerResponse, body: string): void {
    const url = new URL(req.url ?? '/', origin);
    const path = url.pathname;
    const method = req.method ?? 'GET';

    // --- Entra side: discovery, client credentials, managed identity ---
    if (path === `/${DOUBLE_TENANT}/v2.0/.well-known/openid-configuration`) {
      const base = `${origin}/${DOUBLE_TENANT}`;
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
    if (path === `/${DOUBLE_TENANT}/oauth2/v2.0/token` && method === 'POST') {
      const form = new URLSearchParams(body);
      const clientId = form.get('client_id') ?? '';
      if (form.get('grant_type') !== 'client_credentials') return send(res, 400, { error: 'unsupported_grant_type', error_description: 'AADSTS70003: unsupported grant type' });
      if (clients.get(clientId) === undefined || clients.get(clientId) !== form.get('client_secret')) {
        return send(res, 401, { error: 'invalid_client', error_description: `AADSTS7000215: Invalid client secret provided for app '${clientId}'.`, error_codes: [7000215] });
      }
      const scope = form.get('scope') ?? '';
      if (!scope.endsWith('/.default')) return send(res, 400, { error: 'invalid_scope', error_description: 'AADSTS1002012: the scope must end in /.default' });
      return send(res, 200, { token_type: 'Bearer', expires_in: 3600, ext_expires_in: 3600, access_token: issue(clientId, scope.slice(0, -'/.default'.length)) });
    }
    if (path === '/msi/token' && method === 'GET') {
      if (req.headers['x-identity-header'] !== identityHeader) return send(res, 401, { error: 'unauthorized', error_description: 'X-IDENTITY-HEADER is missing or wrong' });
      const resource = url.searchParams.get('resource') ?? '';
      const clientId = url.searchParams.get('client_id') ?? 'msi-system-assigned';
      const token = issue(clientId, resource);
      return send(res, 200, { access_token: token, expires_on: String(now() + 3600), resource, token_type: 'Bearer', client_id: clientId });
    }

    // --- Key Vault side ---
    if (stall > 0) {
      stall--;
      return; // no answer at all: the client's timeout must fire
    }
    if (throttle > 0) {
      throttle--;
      res.setHeader('Retry-After', String(throttleAfter));
      return send(res, 429, { error: { code: 'Throttled', message: 'Request was not processed because too many requests were received.' } });
    }
    if (fail > 0) {
      fail--;
      return send(res, 500, { error: { code: 'InternalServerError', message: 'injected failure' } });
    }
    if (!url.searchParams.get('api-version')) return send(res, 400, { error: { code: 'BadParameter', message: 'The api-version query parameter is missing.' } });

    const auth = req.headers.authorization;
    const challenge = `Bearer authorization="${origin}/${DOUBLE_TENANT}", resource="https://vault.azure.net"`;
    if (!auth?.startsWith('Bearer ')) {
      res.setHeader('WWW-Authenticate', challenge);
      return send(res, 401, { error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' } });
    }
    const token = tokens.get(auth.slice('Bearer '.length));
    if (!token || token.exp <= now() || !VAULT_AUDIENCES.includes(token.aud)) {
      res.setHeader('WWW-Authenticate', `${challenge}, error="invalid_token"`);
      const why = !token ? 'AKV10032: Invalid issuer.' : token.exp <= now() ? 'AKV10022: Invalid audience or token expired.' : `AKV10022: Invalid audience. Expected https://vault.azure.net, found: ${token.aud}.`;
      return send(res, 401, { error: { code: 'Unauthorized', message: why } });
    }

    const route = routeOf(method, path);
    if (!route) return send(res, 404, { error: { code: 'NotFound', message: `no route ${method} ${path}` } });
    const allowed = permissions[token.sub];
    if (Object.keys(permissions).length > 0 && !(allowed?.includes(route.permission) || allowed?.includes('*'))) {
      return send(res, 403, {
        error: {
          code: 'Forbidden',
          message: `The user, group or application 'appid=${token.sub}' does not have secrets ${route.permission.split('/')[1]} permission on key vault '${new URL(origin).host}'.`,
          innererror: { code: 'ForbiddenByPolicy' },
        },
      });
    }
    if (route.name !== undefined && !NAME.test(route.name)) {
      return send(res, 400, { error: { code: 'BadParameter', message: `The request URI contains an invalid name: ${route.name}` } });
    }
    route.run(res, body, url);
  }

  function routeOf(method: string, path: string): { permission: string; name?: string; run: (res: ServerResponse, body: string, url: URL) => void } | undefined {
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    if (parts[0] === 'secrets') {
      if (parts.length === 1 && method === 'GET') return { permission: 'secrets/list', run: (res, _b, url) => listSecrets(res, url) };
      const name = parts[1]!;
      if (parts.length === 2 && method === 'PUT') return { permission: 'secrets/set', name, run: (res, b) => setSecret(res, name, b) };
      if (parts.length === 2 && method === 'GET') return { permission: 'secrets/get', name, run: (res) => getSecret(res, name, undefined) };
      if (parts.length === 2 && method === 'DELETE') return { permission: 'secrets/delete', name, run: (res) => deleteSecret(res, name) };
      if (parts.length === 3 && parts[2] === 'versions' && method === 'GET') return { permission: 'secrets/list', name, run: (res, _b, url) => listVersions(res, name, url) };
      if (parts.length === 3 && method === 'GET') return { permission: 'secrets/get', name, run: (res) => getSecret(res, name, parts[2]) };
      if (parts.length === 3 && method === 'PATCH') return { permission: 'secrets/set', name, run: (res, b) => updateSecret(res, name, parts[2]!, b) };
    }
    if (parts[0] === 'deletedsecrets' && parts.length >= 2) {
      const name = parts[1]!;
      if (parts.length === 2 && method === 'GET') return { permission: 'secrets/get', name, run: (res) => getDeleted(res, name) };
      if (parts.length === 2 && method === 'DELETE') return { permission: 'secrets/purge', name, run: (res) => purge(res, name) };
      if (parts.length === 3 && parts[2] === 'recover' && method === 'POST') return { permission: 'secrets/recover', name, run: (res) => recover(res, name) };
    }
    return undefined;
  }

  const find = (name: string) => secrets.get(name.toLowerCase());
  const sortedVersions = (secret: Secret) => [...secret.versions].sort((a, b) => a.created - b.created || a.order - b.order);
  /**
   * Same-second versions come back in an order unrelated to when they were written (a random
   * rank fixed at creation, so pages of one listing stay consistent): Key Vault promises
   * nothing finer than createdOn.
   */
  const listedVersions = (secret: Secret) => [...secret.versions].sort((a, b) => a.created - b.created || a.tieRank - b.tieRank);
  const latest = (secret: Secret) => sortedVersions(secret).at(-1)!;
  const idOf = (secret: Secret, version?: Version) => `${origin}/secrets/${secret.name}${version ? `/${version.id}` : ''}`;
  const attributes = (v: Version) => ({
    enabled: v.enabled,
    created: v.created,
    updated: v.updated,
    ...(v.exp === undefined ? {} : { exp: v.exp }),
    ...(v.nbf === undefined ? {} : { nbf: v.nbf }),
    recoveryLevel: 'Recoverable+Purgeable',
    recoverableDays: 90,
  });
  const bundle = (secret: Secret, v: Version, withValue: boolean) => ({
    ...(withValue ? { value: v.value } : {}),
    id: idOf(secret, v),
    attributes: attributes(v),
    tags: { ...v.tags },
    ...(v.contentType === undefined ? {} : { contentType: v.contentType }),
  });
  const notFound = (res: ServerResponse, name: string) => send(res, 404, { error: { code: 'SecretNotFound', message: `A secret with (name/id) ${name} was not found in this key vault.` } });
  /** A name whose delete or purge is still "running" refuses this one request, then the change is done. */
  const beingDeleted = (res: ServerResponse, secret: Secret | undefined): boolean => {
    if (!secret?.pending) return false;
    if (secret.pending === 'purging') secrets.delete(secret.name.toLowerCase());
    secret.pending = undefined;
    send(res, 409, { error: { code: 'ObjectIsBeingDeleted', message: `Secret ${secret.name} is currently being deleted.` } });
    return true;
  };

  function checkTags(res: ServerResponse, tags: unknown): tags is Record<string, string> | undefined {
    if (tags === undefined) return true;
    const entries = Object.entries(tags as Record<string, unknown>);
    const bad =
      entries.length > 15
        ? 'Too many tags: at most 15'
        : entries.find(([k, v]) => k.length > 512 || typeof v !== 'string' || v.length > 256)
          ? 'A tag name is longer than 512 or a value longer than 256 characters'
          : undefined;
    if (bad) send(res, 400, { error: { code: 'BadParameter', message: bad } });
    return bad === undefined;
  }

  function setSecret(res: ServerResponse, name: string, body: string): void {
    const input = JSON.parse(body || '{}') as { value?: unknown; tags?: unknown; contentType?: string; attributes?: { enabled?: boolean; exp?: number; nbf?: number } };
    if (typeof input.value !== 'string') return send(res, 400, { error: { code: 'BadParameter', message: 'Property value is required.' } });
    if (Buffer.byteLength(input.value, 'utf8') > 25 * 1024) return send(res, 400, { error: { code: 'BadParameter', message: 'The secret value exceeds 25 KB.' } });
    if (!checkTags(res, input.tags)) return;
    let secret = find(name);
    if (beingDeleted(res, secret)) return;
    secret = find(name);
    if (secret?.deletedDate !== undefined) {
      return send(res, 409, { error: { code: 'Conflict', message: `Secret ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.` } });
    }
    if (!secret) {
      secret = { name, versions: [] };
      secrets.set(name.toLowerCase(), secret);
    }
    const last = secret.versions.reduce((latest, v) => Math.max(latest, v.created), 0);
    const t = options.strictClock ? Math.max(now(), last + 1) : now();
    const version: Version = {
      id: randomBytes(16).toString('hex'),
      value: input.value,
      enabled: input.attributes?.enabled ?? true,
      created: t,
      updated: t,
      tags: { ...((input.tags as Record<string, string>) ?? {}) },
      ...(input.contentType === undefined ? {} : { contentType: input.contentType }),
      ...(input.attributes?.exp === undefined ? {} : { exp: input.attributes.exp }),
      ...(input.attributes?.nbf === undefined ? {} : { nbf: input.attributes.nbf }),
      order: order++,
      tieRank: randomBytes(4).readUInt32BE(0),
    };
    secret.versions.push(version);
    send(res, 200, bundle(secret, version, true));
  }

  function getSecret(res: ServerResponse, name: string, versionId: string | undefined): void {
    const secret = find(name);
    if (!secret || secret.deletedDate !== undefined || secret.pending) return notFound(res, name);
    const version = versionId ? secret.versions.find((v) => v.id === versionId.toLowerCase()) : latest(secret);
    if (!version) return notFound(res, name);
    if (!version.enabled) return send(res, 403, { error: { code: 'Forbidden', message: 'Operation get is not allowed on a disabled secret.' } });
    if (version.nbf !== undefined && version.nbf > now()) return send(res, 403, { error: { code: 'Forbidden', message: "Operation get is not allowed before the secret's nbf." } });
    if (version.exp !== undefined && version.exp <= now()) return send(res, 403, { error: { code: 'Forbidden', message: 'Operation get is not allowed on an expired secret.' } });
    send(res, 200, bundle(secret, version, true));
  }

  function updateSecret(res: ServerResponse, name: string, versionId: string, body: string): void {
    const secret = find(name);
    const version = secret?.deletedDate === undefined ? secret?.versions.find((v) => v.id === versionId.toLowerCase()) : undefined;
    if (!secret || !version) return notFound(res, name);
    const input = JSON.parse(body || '{}') as { tags?: unknown; contentType?: string; attributes?: { enabled?: boolean; exp?: number; nbf?: number } };
    if (!checkTags(res, input.tags)) return;
    if (input.attributes?.enabled !== undefined) version.enabled = input.attributes.enabled;
    if (input.attributes?.exp !== undefined) version.exp = input.attributes.exp;
    if (input.tags !== undefined) version.tags = { ...(input.tags as Record<string, string>) }; // replaces the whole map
    if (input.contentType !== undefined) version.contentType = input.contentType;
    version.updated = now();
    send(res, 200, bundle(secret, version, false));
  }

  function page<T>(res: ServerResponse, items: T[], url: URL, path: string): void {
    const skip = Number(url.searchParams.get('$skiptoken') ?? '0');
    const slice = items.slice(skip, skip + PAGE);
    const next = skip + PAGE < items.length ? `${origin}${path}?api-version=${url.searchParams.get('api-version')}&$skiptoken=${skip + PAGE}` : null;
    send(res, 200, { value: slice, nextLink: next });
  }

  function listSecrets(res: ServerResponse, url: URL): void {
    const items = [...secrets.values()]
      .filter((s) => s.deletedDate === undefined && !s.pending && s.versions.length > 0)
      .map((s) => {
        const v = latest(s);
        return { id: idOf(s), attributes: attributes(v), tags: { ...v.tags }, ...(v.contentType === undefined ? {} : { contentType: v.contentType }) };
      });
    page(res, items, url, '/secrets');
  }

  function listVersions(res: ServerResponse, name: string, url: URL): void {
    const secret = find(name);
    if (!secret || secret.deletedDate !== undefined || secret.pending) return page(res, [], url, `/secrets/${name}/versions`);
    page(res, listedVersions(secret).map((v) => bundle(secret, v, false)), url, `/secrets/${name}/versions`);
  }

  function deleteSecret(res: ServerResponse, name: string): void {
    const secret = find(name);
    if (beingDeleted(res, secret)) return;
    if (!secret || secret.deletedDate !== undefined) return notFound(res, name);
    secret.deletedDate = now();
    secret.pending = 'deleting';
    send(res, 200, deletedBundle(secret));
  }

  function deletedBundle(secret: Secret) {
    return { ...bundle(secret, latest(secret), false), recoveryId: `${origin}/deletedsecrets/${secret.name}`, deletedDate: secret.deletedDate, scheduledPurgeDate: (secret.deletedDate ?? 0) + 90 * 86400 };
  }

  function getDeleted(res: ServerResponse, name: string): void {
    const secret = find(name);
    if (secret?.pending === 'deleting') {
      secret.pending = undefined;
      return send(res, 404, { error: { code: 'SecretNotFound', message: `Deleted Secret not found: ${name}` } });
    }
    if (!secret || secret.deletedDate === undefined || secret.pending) return send(res, 404, { error: { code: 'SecretNotFound', message: `Deleted Secret not found: ${name}` } });
    send(res, 200, deletedBundle(secret));
  }

  function purge(res: ServerResponse, name: string): void {
    const secret = find(name);
    if (beingDeleted(res, secret)) return;
    if (!secret || secret.deletedDate === undefined) return send(res, 404, { error: { code: 'SecretNotFound', message: `Deleted Secret not found: ${name}` } });
    secret.pending = 'purging';
    res.writeHead(204).end();
  }

  function recover(res: ServerResponse, name: string): void {
    const secret = find(name);
    if (!secret || secret.deletedDate === undefined || secret.pending) return send(res, 404, { error: { code: 'SecretNotFound', message: `Deleted Secret not found: ${name}` } });
    secret.deletedDate = undefined;
    send(res, 200, bundle(secret, latest(secret), false));
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  origin = `https://127.0.0.1:${(server.address() as { port: number }).port}`;

  const double: KeyVaultDouble = {
    vaultUrl: origin,
    authorityHost: origin,
    tenantId: DOUBLE_TENANT,
    caFile: certFile,
    identityEndpoint: `${origin}/msi/token`,
    identityHeader,
    addClient: (clientId, secret) => void clients.set(clientId, secret),
    setPermissions: (map) => void (permissions = structuredClone(map)),
    throttleNext: (n, retryAfter = 1) => {
      throttle = n;
      throttleAfter = retryAfter;
    },
    failNext: (n) => void (fail = n),
    stallNext: (n) => void (stall = n),
    expireTokens: (on = true) => {
      expired = on;
      if (on) for (const token of tokens.values()) token.exp = 0;
    },
    freezeClock: (on) => void (frozenAt = on ? now() : undefined),
    tokenForAudience: (clientId, audience) => issue(clientId, audience),
    versionsOf: (name) => sortedVersions(find(name) ?? { name, versions: [] }).map((v) => ({ id: v.id, enabled: v.enabled, tags: { ...v.tags }, value: v.value, created: v.created, ...(v.exp === undefined ? {} : { exp: v.exp }) })),
    requests: 0,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        });
      }),
  };
  return double;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'x-ms-keyvault-service-version': '1.9.0.0' });
  res.end(text);
}

