// The SCIM target against a hand-written HTTP *double*: only for answers the real SCIMMY
// server (test/integration/target-scim.test.ts) never gives: a server that accepts any
// token, 5xx errors that echo the request, redirects, hangs, TLS with a private CA, and a
// token endpoint that fails. Not a substitute for the real-server tests.

import * as v from 'valibot';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { targetSchema, type ScimTargetConfig } from '../../src/config/schema.js';
import { fingerprint } from '../../src/core/fingerprint.js';
import type { AdapterContext } from '../../src/stores/context.js';
import { createScimTarget } from '../../src/targets/scim/scim-target.js';
import type { SecretInUse, Target } from '../../src/targets/target.js';
import { EffectSeam, SessionAborted, applicableFaults, type EffectCall, type Fault } from '../../src/engine/seam.js';

interface SeenRequest {
  method: string;
  url: string;
  authorization?: string;
  accept?: string;
  contentType?: string;
  body: string;
}

type Handler = (req: SeenRequest, res: ServerResponse) => void;

interface ScimDouble {
  base: string;
  seen: SeenRequest[];
  close(): Promise<void>;
}

async function startScimDouble(handler: Handler, tls?: { key: string; cert: string }): Promise<ScimDouble> {
  const seen: SeenRequest[] = [];
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const request: SeenRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        authorization: req.headers.authorization,
        accept: req.headers.accept,
        contentType: req.headers['content-type'],
        body: Buffer.concat(chunks).toString('utf8'),
      };
      seen.push(request);
      handler(request, res);
    });
  };
  const server: Server = tls ? createHttpsServer(tls, listener) : createHttpServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    base: `${tls ? 'https' : 'http'}://127.0.0.1:${port}/scim/v2`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function json(res: ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/scim+json' }).end(JSON.stringify(body));
}

const LIST = { schemas: ['urn:ietf:params:scim:api:messages:2.0:ListResponse'], totalResults: 0, Resources: [] };
const SPC = { schemas: ['urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig'] };

const token: SecretInUse = { value: 'pk_double_token_0123456789abcdefghij', fingerprint: fingerprint('pk_double_token_0123456789abcdefghij') };
const bearerOf = (req: SeenRequest): string | undefined => req.authorization?.replace(/^Bearer /, '');

/** A well-behaved SCIM server for `token`, with optional overrides. */
function scimHandler(overrides: Partial<Record<string, Handler>> = {}): Handler {
  return (req, res) => {
    const path = req.url.replace(/\?.*$/, '').replace('/scim/v2', '');
    const override = overrides[`${req.method} ${path.replace(/\/Users\/.+/, '/Users/:id')}`];
    if (override) return override(req, res);
    if (bearerOf(req) !== token.value) return json(res, 401, { schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '401', detail: 'bad token' });
    if (req.method === 'GET' && path === '/Users') return json(res, 200, LIST);
    if (req.method === 'GET' && path === '/ServiceProviderConfig') return json(res, 200, SPC);
    if (req.method === 'POST' && path === '/Users') return json(res, 201, { id: 'user 1/ü', ...JSON.parse(req.body) });
    if (req.method === 'PATCH') return json(res, 200, {});
    if (req.method === 'DELETE') return json(res, 204);
    return json(res, 404, { detail: 'no route' });
  };
}

function config(fields: Record<string, unknown>): ScimTargetConfig {
  const parsed = v.parse(targetSchema, { type: 'scim', applier: { type: 'store' }, requestTimeout: '2s', ...fields });
  if (parsed.type !== 'scim') throw new Error('not scim');
  return parsed;
}

function context(configDir: string, env: Record<string, string> = {}): AdapterContext {
  return {
    configDir,
    env,
    resolveSecret: async (ref, field) => {
      const name = ref.replace(/^env:/, '');
      if (!env[name]) throw new Error(`${field}: ${name} is not set`);
      return env[name]!;
    },
    debug: () => undefined,
  };
}

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const thing of open.splice(0).reverse()) await thing.close();
});

async function targetFor(handler: Handler, fields: Record<string, unknown> = {}, env: Record<string, string> = {}): Promise<{ target: Target; double: ScimDouble }> {
  const double = await startScimDouble(handler);
  open.push(double);
  const target = await createScimTarget('app', config({ url: double.base, ...fields }), context(tmpdir(), env));
  open.push(target);
  return { target, double };
}

describe('SCIM target vs an HTTP double: probe decisions', () => {
  it('sends the bearer token only in the Authorization header, and the IdP requests verbatim', async () => {
    const { target, double } = await targetFor(scimHandler());
    const result = await target.test(token, { expect: 'accept' });
    expect(result.ok).toBe(true);
    const [entra, okta, spc, wrong] = double.seen;
    expect(entra?.url).toMatch(/^\/scim\/v2\/Users\?filter=externalId%20eq%20%22[0-9a-f-]{36}%22$/);
    expect(okta?.url).toBe('/scim/v2/Users?startIndex=1&count=2');
    expect(spc?.url).toBe('/scim/v2/ServiceProviderConfig');
    expect(wrong?.url).toMatch(/^\/scim\/v2\/Users\?filter=externalId%20eq/);
    expect(bearerOf(wrong!)).not.toBe(token.value);
    for (const req of double.seen) {
      expect(req.url).not.toContain(token.value);
      expect(req.accept).toContain('application/scim+json');
    }
  });

  it('a server that accepts ANY token fails the test loudly', async () => {
    const { target } = await targetFor((req, res) => (req.url.includes('ServiceProviderConfig') ? json(res, 200, SPC) : json(res, 200, LIST)));
    const result = await target.test(token, { expect: 'accept' });
    expect(result.verdict).toBe('accepted');
    expect(result.ok).toBe(false);
    const wrong = result.probes.find((p) => p.name === 'wrong-token-rejected');
    expect(wrong).toMatchObject({ outcome: 'fail', status: 200 });
    expect(wrong?.detail).toMatch(/^INSECURE: the server accepted a random wrong token/);
  });

  it('a 5xx is verdict "unreachable" (never "rejected") with the SCIM detail, and an echoed token is cut out', async () => {
    const { target } = await targetFor((req, res) =>
      json(res, 500, { schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '500', detail: `database down; you sent ${req.authorization}` }),
    );
    const result = await target.test(token, { expect: 'accept' });
    expect(result).toMatchObject({ verdict: 'unreachable', ok: false });
    expect(result.probes[0]?.detail).toBe('HTTP 500: database down; you sent Bearer [bearer token]');
    expect(JSON.stringify(result)).not.toContain(token.value);
    const rejecting = await target.test(token, { expect: 'reject' });
    expect(rejecting).toMatchObject({ verdict: 'unreachable', ok: false });
  });

  it('a redirect is not followed (it would carry the token elsewhere)', async () => {
    const { target, double } = await targetFor((_req, res) => res.writeHead(302, { location: 'http://127.0.0.1:9/steal' }).end());
    const result = await target.test(token, { expect: 'accept' });
    expect(result).toMatchObject({ verdict: 'error', ok: false });
    expect(result.probes[0]).toMatchObject({ status: 302, detail: 'HTTP 302' });
    expect(double.seen).toHaveLength(1);
  });

  it('a server that never answers is "unreachable" after requestTimeout', async () => {
    const { target } = await targetFor(() => undefined, { requestTimeout: '300ms' });
    const started = Date.now();
    const result = await target.test(token, { expect: 'reject' });
    expect(result).toMatchObject({ verdict: 'unreachable', ok: false });
    expect(result.probes[0]).toMatchObject({ status: 'ETIMEDOUT', detail: 'unreachable: no answer within 300ms' });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('write probe: the throw-away user is deleted even when the patch fails', async () => {
    const { target, double } = await targetFor(scimHandler({ 'PATCH /Users/:id': (_req, res) => json(res, 500, { detail: 'patch broke' }) }));
    const result = await target.test(token, { expect: 'accept', write: true });
    expect(result.ok).toBe(false);
    expect(result.probes.slice(4).map((p) => [p.name, p.outcome, p.status])).toEqual([
      ['write-cleanup', 'pass', 200],
      ['write-create-user', 'pass', 201],
      ['write-patch-user', 'fail', 500],
      ['write-delete-user', 'pass', 204],
    ]);
    const create = double.seen.find((r) => r.method === 'POST')!;
    const user = JSON.parse(create.body) as Record<string, unknown>;
    expect(user).toMatchObject({ active: false, schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'] });
    expect(user.userName).toMatch(/^provkey-probe-[0-9a-f]{16}@invalid$/);
    expect(user.externalId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(create.contentType).toMatch(/^application\/scim\+json/);
    const patch = double.seen.find((r) => r.method === 'PATCH')!;
    expect(patch.url).toBe('/scim/v2/Users/user%201%2F%C3%BC');
    expect(JSON.parse(patch.body)).toEqual({
      schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
      Operations: [{ op: 'replace', path: 'displayName', value: 'provkey write probe (patched)' }],
    });
    expect(double.seen.filter((r) => r.method === 'DELETE').map((r) => r.url)).toEqual(['/scim/v2/Users/user%201%2F%C3%BC']);
  });

  it('write probe: when create fails, patch and delete are skipped', async () => {
    const { target, double } = await targetFor(scimHandler({ 'POST /Users': (_req, res) => json(res, 403, { detail: 'read-only token' }) }));
    const result = await target.test(token, { expect: 'accept', write: true });
    expect(result.probes.slice(4).map((p) => [p.name, p.outcome])).toEqual([
      ['write-cleanup', 'pass'],
      ['write-create-user', 'fail'],
      ['write-patch-user', 'skipped'],
      ['write-delete-user', 'skipped'],
    ]);
    expect(double.seen.some((r) => r.method === 'DELETE')).toBe(false);
  });
});

describe('scim write probe: leftovers and the effect seam', () => {
  it('removes users an interrupted probe left (by their whole probe-shaped userName only)', async () => {
    const leftover = { id: 'left 1', userName: 'provkey-probe-00112233aabbccdd@invalid' };
    const lookalike = { id: 'real 1', userName: 'provkey-probe-someone@example.com' };
    const { target, double } = await targetFor(
      scimHandler({
        'GET /Users': (req, res) => {
          if (bearerOf(req) !== token.value) return json(res, 401, { detail: 'bad token' });
          // A server that ignores the filter answers with every user: only the probe's are deleted.
          return /userName(\+|%20)sw/.test(req.url) ? json(res, 200, { ...LIST, totalResults: 2, Resources: [leftover, lookalike] }) : json(res, 200, LIST);
        },
      }),
    );
    const result = await target.test(token, { expect: 'accept', write: true });
    expect(result.ok, JSON.stringify(result.probes)).toBe(true);
    expect(result.probes[4]).toMatchObject({ name: 'write-cleanup', outcome: 'pass', detail: 'removed 1 leftover probe user(s) from an interrupted run' });
    const deletes = double.seen.filter((r) => r.method === 'DELETE').map((r) => r.url);
    expect(deletes[0]).toBe('/scim/v2/Users/left%201');
    expect(deletes).not.toContain('/scim/v2/Users/real%201');
    expect(deletes).toHaveLength(2);
  });

  it('each write step is a seam call; an outage fails that step as unreachable, a kill abandons the session', async () => {
    const { target, double } = await targetFor(scimHandler());
    const calls: EffectCall[] = [];
    await new EffectSeam({ hook: (call) => void calls.push(call) }).target(target, 'k').test(token, { expect: 'accept', write: true });
    expect(calls.map((c) => c.operation)).toEqual(['test', 'probe.cleanup', 'probe.add', 'probe.modify', 'probe.delete']);
    expect(calls.slice(1).map((c) => applicableFaults(c).includes('rejection'))).toEqual([false, true, true, false]);

    const at = (operation: string, fault: Fault) => new EffectSeam({ hook: (call) => (call.operation === operation ? fault : undefined) }).target(target, 'k');
    const timedOut = await at('probe.add', 'timeout').test(token, { expect: 'accept', write: true });
    expect(timedOut.ok).toBe(false);
    expect(timedOut.verdict).toBe('accepted');
    const create = timedOut.probes.find((p) => p.name === 'write-create-user')!;
    expect(create).toMatchObject({ outcome: 'fail', status: 'ETIMEDOUT' });
    expect(create.detail).toMatch(/^unreachable/);
    expect(create.detail).not.toMatch(/reject|refus/);

    const refused = await at('probe.modify', 'rejection').test(token, { expect: 'accept', write: true });
    expect(refused.probes.find((p) => p.name === 'write-patch-user')).toMatchObject({ outcome: 'fail', status: 403 });
    // The throw-away user is still deleted after a refused patch.
    expect(refused.probes.find((p) => p.name === 'write-delete-user')).toMatchObject({ outcome: 'pass' });

    const before = double.seen.filter((r) => r.method === 'DELETE').length;
    await expect(at('probe.add', 'kill-after').test(token, { expect: 'accept', write: true })).rejects.toBeInstanceOf(SessionAborted);
    // Killed after the create: nothing more happens, not even the delete in `finally`.
    expect(double.seen.filter((r) => r.method === 'DELETE').length).toBe(before);
  });
});

describe('http applier vs a token-endpoint double', () => {
  const admin = 'admin_double_token_zyxwvutsrqponmlk';
  const next: SecretInUse = { value: 'pk_next_double_ABCDEFGHIJKLMNOP', fingerprint: fingerprint('pk_next_double_ABCDEFGHIJKLMNOP') };

  async function applierTarget(status: number, body?: unknown): Promise<{ target: Target; double: ScimDouble }> {
    const double = await startScimDouble((req, res) => json(res, status, typeof body === 'function' ? body(req) : body));
    open.push(double);
    const target = await createScimTarget(
      'app',
      config({ url: double.base, applier: { type: 'http', url: `${double.base.replace('/scim/v2', '')}/admin/tokens`, authRef: 'env:ADMIN' } }),
      context(tmpdir(), { ADMIN: admin }),
    );
    open.push(target);
    return { target, double };
  }

  it('sends add / replace / remove bodies with the admin token; rollback removes then adds', async () => {
    const { target, double } = await applierTarget(204);
    expect(await target.set({ next, current: token, replace: false })).toMatchObject({ ok: true });
    expect(await target.retire({ old: token, current: next })).toMatchObject({ ok: true });
    expect(await target.set({ next, current: token, replace: true })).toMatchObject({ ok: true });
    expect(await target.rollback({ next, current: token })).toMatchObject({ ok: true });
    expect(double.seen.map((r) => [r.method, r.url, r.authorization, JSON.parse(r.body)])).toEqual([
      ['POST', '/admin/tokens', `Bearer ${admin}`, { action: 'add', token: next.value }],
      ['POST', '/admin/tokens', `Bearer ${admin}`, { action: 'remove', token: token.value }],
      ['POST', '/admin/tokens', `Bearer ${admin}`, { action: 'replace', token: next.value, replaces: token.value }],
      ['POST', '/admin/tokens', `Bearer ${admin}`, { action: 'remove', token: next.value }],
      ['POST', '/admin/tokens', `Bearer ${admin}`, { action: 'add', token: token.value }],
    ]);
  });

  it('retire after this run\'s replace sends no second remove; after a rollback re-added the token, it does', async () => {
    const { target, double } = await applierTarget(204);
    expect(await target.set({ next, current: token, replace: true })).toMatchObject({ ok: true });
    expect(await target.retire({ old: token, current: next })).toMatchObject({ ok: true, detail: expect.stringContaining('removed by this run') });
    expect(double.seen.map((r) => JSON.parse(r.body).action)).toEqual(['replace']);
    expect(await target.rollback({ next, current: token })).toMatchObject({ ok: true });
    expect(await target.retire({ old: token, current: next })).toMatchObject({ ok: true });
    expect(double.seen.map((r) => JSON.parse(r.body).action)).toEqual(['replace', 'remove', 'add', 'remove']);
  });

  it.each([
    [401, 'denied'],
    [403, 'denied'],
    [404, 'rejected'],
    [409, 'rejected'],
    [500, 'unreachable'],
    [503, 'unreachable'],
  ] as const)('HTTP %i → %s, with the endpoint\'s detail and no token in it', async (status, reason) => {
    const { target } = await applierTarget(status, (req: SeenRequest) => ({ detail: `refused ${req.body} with ${req.authorization}` }));
    const result = await target.set({ next, current: token, replace: true });
    expect(result).toMatchObject({ ok: false, reason });
    const text = JSON.stringify(result);
    for (const value of [next.value, token.value, admin]) expect(text).not.toContain(value);
    if (!result.ok) expect(result.detail).toContain(`token endpoint answered ${status} to replace ${next.fingerprint}: refused`);
  });

  it('rollback stops when the remove fails', async () => {
    const { target, double } = await applierTarget(500);
    expect(await target.rollback({ next, current: token })).toMatchObject({ ok: false, reason: 'unreachable' });
    expect(double.seen).toHaveLength(1);
  });

  it('a missing admin token is a config error naming the field', async () => {
    const double = await startScimDouble((_req, res) => json(res, 204));
    open.push(double);
    const target = await createScimTarget(
      'app',
      config({ url: double.base, applier: { type: 'http', url: `${double.base}/admin`, authRef: 'env:MISSING' } }),
      context(tmpdir(), {}),
    );
    open.push(target);
    await expect(target.set({ next, replace: false })).rejects.toThrow(/^keys\.app\.target\.applier\.authRef: MISSING is not set$/);
  });
});

// A private CA: the certificate is valid for "scim.test" only, not for 127.0.0.1.
const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe.runIf(hasOpenssl)('TLS: verified by default, tls.caFile adds a CA, tls.serverName', () => {
  let dir: string;
  let tls: { key: string; cert: string };
  let double: ScimDouble;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'provkey-scim-tls-'));
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
      '-subj', '/CN=scim.test', '-addext', 'subjectAltName=DNS:scim.test',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'ca.pem'),
    ], { stdio: 'ignore' });
    tls = { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'ca.pem'), 'utf8') };
    double = await startScimDouble(scimHandler(), tls);
  });
  afterAll(async () => {
    await double?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function tlsTarget(fields: Record<string, unknown>): Promise<Target> {
    const target = await createScimTarget('app', config({ url: double.base, ...fields }), context(dir));
    open.push(target);
    return target;
  }

  it('an unknown CA is refused: verdict "unreachable" (not the app we trust), naming the certificate problem', async () => {
    const result = await (await tlsTarget({})).test(token, { expect: 'accept' });
    expect(result).toMatchObject({ verdict: 'unreachable', ok: false });
    expect(result.probes[0]?.status).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY/);
  });

  it('with the CA but the wrong name, the hostname check still fails', async () => {
    const result = await (await tlsTarget({ tls: { caFile: 'ca.pem' } })).test(token, { expect: 'accept' });
    expect(result).toMatchObject({ verdict: 'unreachable', ok: false });
    expect(result.probes[0]?.status).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
  });

  it('with the CA (relative to the config dir) and serverName, the test passes', async () => {
    const result = await (await tlsTarget({ tls: { caFile: 'ca.pem', serverName: 'scim.test' } })).test(token, { expect: 'accept' });
    expect(result.ok).toBe(true);
  });
});

describe('facts about the server, asked once per run by all its keys (issue 8)', () => {
  const other: SecretInUse = { value: 'pk_other_key_token_ZYXWVUTSRQPONMLK', fingerprint: fingerprint('pk_other_key_token_ZYXWVUTSRQPONMLK') };

  /** Two keys' targets on one server, opened in one run (one runScope). */
  async function twoKeys(handler: Handler): Promise<{ first: Target; second: Target; double: ScimDouble }> {
    const double = await startScimDouble(handler);
    open.push(double);
    const runScope = new Map<string, unknown>();
    const open2 = (name: string) => createScimTarget(name, config({ url: double.base }), { ...context(tmpdir()), runScope });
    const [first, second] = await Promise.all([open2('first'), open2('second')]);
    open.push(first, second);
    return { first, second, double };
  }

  // Accepts both keys' tokens (the recorded request is left as it came).
  const bothTokens: Handler = (req, res) => scimHandler()(bearerOf(req) === other.value ? { ...req, authorization: `Bearer ${token.value}` } : req, res);

  it('the second key sends only its own proof (the Entra query) and still reports every probe', async () => {
    const { first, second, double } = await twoKeys(bothTokens);
    expect(await first.test(token, { expect: 'accept' })).toMatchObject({ ok: true });
    const before = double.seen.length;
    const result = await second.test(other, { expect: 'accept' });
    expect(result.ok).toBe(true);
    const sent = double.seen.slice(before);
    expect(sent.map((r) => [r.url.replace(/\?.*$/, ''), bearerOf(r)])).toEqual([['/scim/v2/Users', other.value]]);
    expect(sent[0]!.url).toMatch(/filter=externalId/);
    expect(result.probes.map((p) => [p.name, p.outcome])).toEqual([
      ['entra-user-query', 'pass'],
      ['okta-user-page', 'pass'],
      ['service-provider-config', 'pass'],
      ['wrong-token-rejected', 'pass'],
    ]);
    expect(result.probes.slice(1).every((p) => p.detail?.includes('asked once per server in this run'))).toBe(true);
  });

  it('keys tested at the same time share one request for each server fact', async () => {
    const { first, second, double } = await twoKeys(bothTokens);
    const results = await Promise.all([first.test(token, { expect: 'accept' }), second.test(other, { expect: 'accept' })]);
    expect(results.map((r) => r.ok)).toEqual([true, true]);
    expect(double.seen.filter((r) => r.url.includes('ServiceProviderConfig'))).toHaveLength(1);
    expect(double.seen.filter((r) => r.url.includes('filter=externalId'))).toHaveLength(3);
  });

  it('a failed server fact is never kept: the next key asks again and fails on its own answer', async () => {
    const { first, second, double } = await twoKeys((req, res) => (req.url.includes('ServiceProviderConfig') ? json(res, 200, SPC) : json(res, 200, LIST)));
    const results = [await first.test(token, { expect: 'accept' }), await second.test(other, { expect: 'accept' })];
    for (const result of results) {
      expect(result.ok).toBe(false);
      expect(result.probes.find((p) => p.name === 'wrong-token-rejected')).toMatchObject({ outcome: 'fail', status: 200 });
    }
    const wrongTokenQueries = double.seen.filter((r) => r.url.includes('filter=externalId') && bearerOf(r) !== token.value && bearerOf(r) !== other.value);
    expect(wrongTokenQueries).toHaveLength(2);
  });

  it('the token a key is rejected with is still proven per key, never shared', async () => {
    const { first, second, double } = await twoKeys(scimHandler());
    expect(await first.test(other, { expect: 'reject' })).toMatchObject({ ok: true, verdict: 'rejected' });
    expect(await second.test(other, { expect: 'reject' })).toMatchObject({ ok: true, verdict: 'rejected' });
    expect(double.seen.map(bearerOf)).toEqual([other.value, other.value]);
  });
});
