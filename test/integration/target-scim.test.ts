// The SCIM target against a real SCIM 2.0 server (SCIMMY, test/harness/scim/server.ts):
// the Target contract once per applier, plus the answers a real server gives when
// something is missing or down.

import * as v from 'valibot';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { targetSchema, type ScimTargetConfig } from '../../src/config/schema.js';
import { resolveSecretRef } from '../../src/config/secret-ref.js';
import { fingerprint } from '../../src/core/fingerprint.js';
import type { AdapterContext } from '../../src/stores/context.js';
import { createScimTarget } from '../../src/targets/scim/scim-target.js';
import type { SecretInUse, Target } from '../../src/targets/target.js';
import { describeTargetContract, summary, testUntil, type TargetUnderTest } from '../contract/target-contract.js';
import { startFaultProxy, type Fault, type FaultProxy } from '../harness/scim/fault-proxy.ts';
import { SCIM_ADMIN_TOKEN_HOOK_SCRIPT, sha256Hex, startScimServer, type ScimServer, type StartScimServerOptions } from '../harness/servers/scim.ts';

function makeSecret(): SecretInUse {
  const value = `pk_${randomBytes(24).toString('base64url')}`;
  return { value, fingerprint: fingerprint(value) };
}

function scimConfig(fields: Record<string, unknown>): ScimTargetConfig {
  const config = v.parse(targetSchema, { type: 'scim', requestTimeout: '5s', ...fields });
  if (config.type !== 'scim') throw new Error('not a scim config');
  return config;
}

function contextFor(dir: string, env: Record<string, string> = {}): AdapterContext {
  const context: AdapterContext = {
    configDir: dir,
    env: { ...process.env, ...env },
    resolveSecret: (ref, field) => resolveSecretRef(ref, field, context),
    debug: () => undefined,
  };
  return context;
}

type ApplierKind = 'http' | 'exec';

/** A fresh server accepting `initial`, and the SCIM target pointed at it with the given applier. */
async function scimUnderTest(applier: ApplierKind, serverOptions: StartScimServerOptions = {}): Promise<TargetUnderTest> {
  const initial = makeSecret();
  const adminToken = makeSecret().value;
  const server = await startScimServer({ tokens: [initial.value], adminToken, ...serverOptions });
  const dir = mkdtempSync(join(tmpdir(), 'provkey-scim-target-'));
  const applierConfig =
    applier === 'http'
      ? { type: 'http', url: server.adminUrl, authRef: 'env:SCIM_ADMIN_TOKEN' }
      : // The hook goes through the app's admin API, as a deployment script would: so it notices an app that is down.
        { type: 'exec', command: [process.execPath, SCIM_ADMIN_TOKEN_HOOK_SCRIPT, '--admin-url', server.adminUrl], timeout: '15s', passEnv: ['SCIM_ADMIN_TOKEN'] };
  const target = await createScimTarget('entra-scim', scimConfig({ url: server.url, applier: applierConfig, propagationTimeout: '10s' }), contextFor(dir, { SCIM_ADMIN_TOKEN: adminToken }));
  return {
    target,
    initial,
    makeSecret,
    accepts: async (secret) => (await server.acceptedDigests()).includes(sha256Hex(secret.value)),
    takeDown: () => server.stop(),
    async cleanup() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describeTargetContract('scim, http applier (SCIMMY token endpoint)', () => scimUnderTest('http'));
describeTargetContract('scim, exec applier (token hook via the admin API)', () => scimUnderTest('exec'));
describeTargetContract('scim, http applier, 400 ms propagation', () => scimUnderTest('http', { propagationMs: 400 }));
describeTargetContract('scim, exec applier, 400 ms propagation', () => scimUnderTest('exec', { propagationMs: 400 }));

describe('scim target against the SCIMMY server', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function start(options: StartScimServerOptions, fields: Record<string, unknown> = {}): Promise<{ server: ScimServer; target: Target; token: SecretInUse }> {
    const token = makeSecret();
    const server = await startScimServer({ tokens: [token.value], ...options });
    cleanups.push(() => server.stop());
    const target = await createScimTarget('app', scimConfig({ url: server.url, applier: { type: 'store' }, ...fields }), contextFor(tmpdir()));
    cleanups.push(() => target.close());
    return { server, target, token };
  }

  it('runs the identity providers\' probes in order and passes them', async () => {
    const { target, token } = await start({});
    const result = await target.test(token, { expect: 'accept' });
    expect(result.ok, summary(result)).toBe(true);
    expect(result.probes.map((p) => [p.name, p.outcome, p.status])).toEqual([
      ['entra-user-query', 'pass', 200],
      ['okta-user-page', 'pass', 200],
      ['service-provider-config', 'pass', 200],
      ['wrong-token-rejected', 'pass', 401],
    ]);
  });

  it('runs the write probe (create, patch, delete) and leaves no user behind', async () => {
    const { server, target, token } = await start({});
    const result = await target.test(token, { expect: 'accept', write: true });
    expect(result.ok, summary(result)).toBe(true);
    expect(result.probes.slice(4).map((p) => [p.name, p.outcome, p.status])).toEqual([
      ['write-cleanup', 'pass', 200],
      ['write-create-user', 'pass', 201],
      ['write-patch-user', 'pass', 200],
      ['write-delete-user', 'pass', 204],
    ]);
    const state = (await server.state()) as unknown as { data: { users: number } };
    expect(state.data.users).toBe(0);
  });

  it('config writeProbe: true runs the write probe on every test', async () => {
    const { target, token } = await start({}, { writeProbe: true });
    const result = await target.test(token, { expect: 'accept' });
    expect(result.probes.map((p) => p.name)).toContain('write-delete-user');
    expect(result.ok, summary(result)).toBe(true);
  });

  it('a server without /ServiceProviderConfig is reported "unsupported", not failed', async () => {
    const { target, token } = await start({ noServiceProviderConfig: true });
    const result = await target.test(token, { expect: 'accept' });
    expect(result.ok, summary(result)).toBe(true);
    const spc = result.probes.find((p) => p.name === 'service-provider-config');
    expect(spc).toMatchObject({ outcome: 'unsupported', status: 404 });
    expect(spc?.detail).toContain('ServiceProviderConfig is not available on this server');
  });

  it('a revoked token: verdict rejected, the other probes skipped', async () => {
    const { target, token } = await start({});
    const other = makeSecret();
    const result = await target.test(other, { expect: 'accept' });
    expect(result).toMatchObject({ ok: false, verdict: 'rejected' });
    expect(result.probes[0]).toMatchObject({ name: 'entra-user-query', outcome: 'fail', status: 401 });
    expect(result.probes[0]?.detail).toContain('Invalid, expired or revoked bearer token');
    expect(result.probes.slice(1).every((p) => p.outcome === 'skipped')).toBe(true);
    expect((await target.test(token, { expect: 'reject' })).verdict).toBe('accepted');
  });

  it('store applier: the app reads the store; provkey only waits for propagation', async () => {
    const { server, target, token } = await start({ propagationMs: 300 }, { propagationTimeout: '10s' });
    const next = makeSecret();
    expect(await target.set({ next, current: token, replace: false })).toEqual({ ok: true, detail: 'the app reads the store' });
    // What the engine does: store the pending version, which the app then picks up.
    await server.setTokens([token.value, next.value]);
    const accepted = await testUntil(target, next, 'accept');
    expect(accepted.ok, summary(accepted)).toBe(true);
    expect(await target.retire({ old: token, current: next })).toMatchObject({ ok: true });
    await server.setTokens([next.value]);
    expect((await testUntil(target, token, 'reject')).ok).toBe(true);
  });

  it('an unreachable port gives verdict "unreachable" quickly', async () => {
    const { server, target, token } = await start({});
    await server.stop();
    const started = Date.now();
    const result = await target.test(token, { expect: 'accept' });
    expect(result).toMatchObject({ ok: false, verdict: 'unreachable' });
    expect(result.probes[0]?.status).toBe('ECONNREFUSED');
    expect(Date.now() - started).toBeLessThan(3000);
    expect((await target.test(token, { expect: 'reject' })).verdict).toBe('unreachable');
  });

  it('a wrong base path: verdict error naming the status and the server\'s detail', async () => {
    const { server, token } = await start({});
    const target = await createScimTarget('app', scimConfig({ url: server.url.replace('/scim/v2', '/scim/v1'), applier: { type: 'store' } }), contextFor(tmpdir()));
    cleanups.push(() => target.close());
    const result = await target.test(token, { expect: 'accept' });
    expect(result).toMatchObject({ ok: false, verdict: 'error' });
    expect(result.probes[0]?.detail).toMatch(/^HTTP 404/);
  });

  it('http applier: a wrong admin token is "denied", an unreachable endpoint "unreachable"', async () => {
    const token = makeSecret();
    const server = await startScimServer({ tokens: [token.value], adminToken: makeSecret().value });
    cleanups.push(() => server.stop());
    const wrongAdmin = makeSecret().value;
    const target = await createScimTarget(
      'app',
      scimConfig({ url: server.url, applier: { type: 'http', url: server.adminUrl, authRef: 'env:ADMIN' } }),
      contextFor(tmpdir(), { ADMIN: wrongAdmin }),
    );
    cleanups.push(() => target.close());
    const next = makeSecret();
    const denied = await target.set({ next, current: token, replace: false });
    expect(denied).toMatchObject({ ok: false, reason: 'denied' });
    expect(JSON.stringify(denied)).not.toContain(wrongAdmin);
    expect(JSON.stringify(denied)).not.toContain(next.value);
    await server.stop();
    expect(await target.retire({ old: token })).toMatchObject({ ok: false, reason: 'unreachable' });
  });

  it('http applier: a 400 from the token endpoint is "rejected" with its detail', async () => {
    const token = makeSecret();
    const adminToken = makeSecret().value;
    const server = await startScimServer({ tokens: [token.value], adminToken });
    cleanups.push(() => server.stop());
    const target = await createScimTarget(
      'app',
      scimConfig({ url: server.url, applier: { type: 'http', url: server.adminUrl, authRef: 'env:ADMIN' } }),
      contextFor(tmpdir(), { ADMIN: adminToken }),
    );
    cleanups.push(() => target.close());
    // The harness refuses a "replace" whose token equals the one it replaces.
    const result = await target.set({ next: token, current: token, replace: true });
    expect(result).toMatchObject({ ok: false, reason: 'rejected' });
    if (!result.ok) expect(result.detail).toContain("'replaces' must differ from 'token'");
    expect(JSON.stringify(result)).not.toContain(token.value);
  });
});

// --- faults: an app that is down, slow, failing or not the one we trust is never "rejected" ---
//
// The real SCIMMY server behind a loopback fault proxy (test/harness/scim/fault-proxy.ts), once
// per applier. Before a rotation (the current token is tested, the new one set) and during one
// (the new token was set, then the app fails: its test, the rollback, the current token's test),
// every fault must give "unreachable" and leave the app exactly as it was, and once the fault is
// gone both tokens must answer as they really are: an outage says nothing about a token.

const FAULTS: Array<{ name: string; fault: Fault }> = [
  { name: 'down (connection refused)', fault: { kind: 'down' } },
  { name: 'slow (past the request timeout)', fault: { kind: 'hang' } },
  { name: 'answering 500', fault: { kind: 'status', status: 500 } },
  { name: 'answering 429 with Retry-After past the bound', fault: { kind: 'status', status: 429, retryAfter: '3600' } },
  { name: 'presenting an untrusted certificate', fault: { kind: 'untrusted-cert' } },
];

type FaultApplier = 'http' | 'exec' | 'store';

interface FaultFixture {
  server: ScimServer;
  proxy: FaultProxy;
  target: Target;
  /** Makes the app accept exactly these tokens (file + admin overrides are per test fresh tokens). */
  accepting(tokens: SecretInUse[]): Promise<void>;
  close(): Promise<void>;
}

async function faultFixture(applier: FaultApplier): Promise<FaultFixture> {
  const adminToken = makeSecret().value;
  const server = await startScimServer({ adminToken });
  const proxy = await startFaultProxy(new URL(server.url).origin);
  const dir = mkdtempSync(join(tmpdir(), 'provkey-scim-fault-'));
  const applierConfig = {
    http: { type: 'http', url: proxy.url('/admin/tokens'), authRef: 'env:SCIM_ADMIN_TOKEN', timeout: '1s' },
    exec: {
      type: 'exec',
      command: [process.execPath, SCIM_ADMIN_TOKEN_HOOK_SCRIPT, '--admin-url', proxy.url('/admin/tokens'), '--ca-file', proxy.caFile],
      timeout: '2s',
      passEnv: ['SCIM_ADMIN_TOKEN'],
    },
    store: { type: 'store' },
  }[applier];
  const config = scimConfig({ url: proxy.url('/scim/v2'), tls: { caFile: proxy.caFile }, requestTimeout: '1s', propagationTimeout: '5s', applier: applierConfig });
  const target = await createScimTarget('app', config, contextFor(dir, { SCIM_ADMIN_TOKEN: adminToken }));
  return {
    server,
    proxy,
    target,
    async accepting(tokens) {
      await server.setTokens(tokens.map((t) => t.value));
      for (const token of tokens) expect((await testUntil(target, token, 'accept')).ok, 'fixture: the app accepts the token').toBe(true);
    },
    async close() {
      await target.close();
      await proxy.stop();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** What the app itself holds, asked past the proxy (the server's own state). */
async function appAccepts(server: ScimServer, token: SecretInUse): Promise<boolean> {
  return (await server.acceptedDigests()).includes(sha256Hex(token.value));
}

describe.each(['http', 'exec', 'store'] as const)('scim target, %s applier, behind a fault proxy', (applier) => {
  let f: FaultFixture;
  beforeAll(async () => {
    f = await faultFixture(applier);
  });
  afterAll(async () => {
    await f?.close();
  });
  beforeEach(async () => {
    await f.proxy.fault({ kind: 'pass' });
  });

  describe.each(FAULTS)('an app $name', ({ fault }) => {
    it('before a rotation: the current token and the set are "unreachable", nothing changes', async () => {
      const current = makeSecret();
      const next = makeSecret();
      await f.accepting([current]);
      await f.proxy.fault(fault);

      const accept = await f.target.test(current, { expect: 'accept' });
      expect(accept, summary(accept)).toMatchObject({ ok: false, verdict: 'unreachable' });
      const reject = await f.target.test(current, { expect: 'reject' });
      expect(reject, summary(reject)).toMatchObject({ ok: false, verdict: 'unreachable' });
      const set = await f.target.set({ next, current, replace: false });
      if (applier === 'store') expect(set).toMatchObject({ ok: true });
      else expect(set).toMatchObject({ ok: false, reason: 'unreachable' });
      const found = await f.target.identify!([next, current]);
      expect(found.verdicts, found.detail).toEqual({ [next.fingerprint]: 'unreachable', [current.fingerprint]: 'unreachable' });
      expect(JSON.stringify([accept, reject, set, found])).not.toContain(current.value);

      await f.proxy.fault({ kind: 'pass' });
      expect(await appAccepts(f.server, current)).toBe(true);
      expect(await appAccepts(f.server, next)).toBe(false);
      const after = await f.target.test(current, { expect: 'accept' });
      expect(after.ok, summary(after)).toBe(true);
    });

    it('during a rotation: the new token\'s test, the rollback and the current token\'s test are "unreachable"; the app keeps both', async () => {
      const current = makeSecret();
      const next = makeSecret();
      await f.accepting([current]);
      if (applier === 'store') await f.server.setTokens([current.value, next.value]);
      expect(await f.target.set({ next, current, replace: false })).toMatchObject({ ok: true });
      expect((await testUntil(f.target, next, 'accept')).ok).toBe(true);
      await f.proxy.fault(fault);

      const nextTest = await f.target.test(next, { expect: 'accept' });
      expect(nextTest, summary(nextTest)).toMatchObject({ ok: false, verdict: 'unreachable' });
      const rollback = await f.target.rollback({ next, current });
      if (applier === 'store') expect(rollback).toMatchObject({ ok: true });
      else expect(rollback).toMatchObject({ ok: false, reason: 'unreachable' });
      const currentTest = await f.target.test(current, { expect: 'accept' });
      expect(currentTest, summary(currentTest)).toMatchObject({ ok: false, verdict: 'unreachable' });
      const retire = await f.target.retire({ old: current, current: next });
      if (applier !== 'store') expect(retire).toMatchObject({ ok: false, reason: 'unreachable' });

      // The fault gone, the truth: the rollback never happened, so both still work.
      await f.proxy.fault({ kind: 'pass' });
      expect(await appAccepts(f.server, next)).toBe(true);
      expect(await appAccepts(f.server, current)).toBe(true);
      expect((await f.target.test(next, { expect: 'accept' })).verdict).toBe('accepted');
      expect((await f.target.test(current, { expect: 'accept' })).verdict).toBe('accepted');
      const text = JSON.stringify([nextTest, rollback, currentTest, retire]);
      for (const secret of [current, next]) expect(text).not.toContain(secret.value);
    });
  });

  it('a 429 with a short Retry-After is waited for and then answered: accepted, never "rejected"', async () => {
    const current = makeSecret();
    await f.accepting([current]);
    await f.proxy.fault({ kind: 'status', status: 429, retryAfter: '1', times: 1 });
    const result = await f.target.test(current, { expect: 'accept' });
    expect(result.ok, summary(result)).toBe(true);
    expect(f.proxy.seen().slice(0, 2).map((r) => r.answer)).toEqual([429, 'proxied']);
  });

  it('a 503 with Retry-After is waited for too', async () => {
    const current = makeSecret();
    await f.accepting([current]);
    await f.proxy.fault({ kind: 'status', status: 503, retryAfter: '1', times: 1 });
    const result = await f.target.test(current, { expect: 'accept' });
    expect(result.ok, summary(result)).toBe(true);
    expect(f.proxy.seen()[0]?.answer).toBe(503);
  });

  it('a wrong token through the proxy is still "rejected" (401 passes through untouched)', async () => {
    const current = makeSecret();
    await f.accepting([current]);
    const result = await f.target.test(makeSecret(), { expect: 'reject' });
    expect(result, summary(result)).toMatchObject({ ok: true, verdict: 'rejected' });
  });

  if (applier === 'http') {
    it('http applier: a 429 from the token endpoint with a short Retry-After is sent again and succeeds', async () => {
      const current = makeSecret();
      const next = makeSecret();
      await f.accepting([current]);
      await f.proxy.fault({ kind: 'status', status: 429, retryAfter: '1', times: 1 }, { only: '/admin' });
      expect(await f.target.set({ next, current, replace: false })).toMatchObject({ ok: true });
      expect(f.proxy.seen().filter((r) => r.path.startsWith('/admin')).map((r) => r.answer)).toEqual([429, 'proxied']);
      expect((await testUntil(f.target, next, 'accept')).ok).toBe(true);
    });

    it('keeps connections alive: a whole connection test reuses one TLS connection', async () => {
      const current = makeSecret();
      await f.accepting([current]);
      // A fault change drops every connection: what follows opens them afresh.
      await f.proxy.fault({ kind: 'pass' });
      // With the write probe: the server's facts may already be known to this target (asked once
      // per run), the key's own requests are still four (the Entra query, create, patch, delete).
      const result = await f.target.test(current, { expect: 'accept', write: true });
      expect(result.ok, summary(result)).toBe(true);
      expect(f.proxy.seen().length).toBeGreaterThanOrEqual(4);
      expect(f.proxy.connections()).toBe(1);
    });
  }
});
