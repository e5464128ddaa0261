// The SCIM target against a real SCIM 2.0 server (SCIMMY, test/harness/scim/server.ts):
// the Target contract once per applier, plus the answers a real server gives when
// something is missing or down.

import * as v from 'valibot';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { targetSchema, type ScimTargetConfig } from '../../src/config/schema.js';
import { resolveSecretRef } from '../../src/config/secret-ref.js';
import { fingerprint } from '../../src/core/fingerprint.js';
import type { AdapterContext } from '../../src/stores/context.js';
import { createScimTarget } from '../../src/targets/scim/scim-target.js';
import type { SecretInUse, Target } from '../../src/targets/target.js';
import { describeTargetContract, summary, testUntil, type TargetUnderTest } from '../contract/target-contract.js';
import { sha256Hex, startScimServer, type ScimServer, type StartScimServerOptions } from '../harness/servers/scim.ts';

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
      : { type: 'exec', command: server.hookCommand, timeout: '15s' };
  const target = await createScimTarget('entra-scim', scimConfig({ url: server.url, applier: applierConfig, propagationTimeout: '10s' }), contextFor(dir, { SCIM_ADMIN_TOKEN: adminToken }));
  return {
    target,
    initial,
    makeSecret,
    accepts: async (secret) => (await server.acceptedDigests()).includes(sha256Hex(secret.value)),
    async cleanup() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describeTargetContract('scim, http applier (SCIMMY token endpoint)', () => scimUnderTest('http'));
describeTargetContract('scim, exec applier (token hook)', () => scimUnderTest('exec'));
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
