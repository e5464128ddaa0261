// Requests per rotated key in a batch, counted from the servers' own records: the SCIM test
// server's request log (--log) and OpenBao's file audit device. Issue 8: a SCIM key rotated
// with overlap costs at most 3 SCIM requests, a key kept in Vault at most 8 Vault requests;
// `status` and `rotate --due` read each key's state once. Counts only, never times.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pLimit from 'p-limit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ProvkeyCli, bearerStatus, describeRun } from '../harness/cli.ts';
import { scimRequests, type LoggedRequest } from '../harness/scim/request-log.ts';
import { startOpenBao, type AuditedRequest, type OpenBaoServer } from '../harness/servers/openbao.ts';
import { sha256Hex, startScimServer, type ScimServer } from '../harness/servers/scim.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MOUNT = 'secret';
const PREFIX = `counts-${randomBytes(3).toString('hex')}`;
const KEYS = Array.from({ length: 20 }, (_, i) => `scim-${String(i + 1).padStart(2, '0')}`);
/** Keys without overlap (grace 0): the old token must be rejected, proven per key. */
const STRICT = Array.from({ length: 5 }, (_, i) => `strict-${String(i + 1)}`);
const ALL = [...KEYS, ...STRICT];

function shippedPolicy(mount: string, prefix: string): string {
  return readFileSync(path.join(repoRoot, 'docs/vault-policy.hcl'), 'utf8')
    .replaceAll('"secret/', `"${mount}/`)
    .replace(/(path "[^"]+\/)provkey\//g, `$1${prefix}/`);
}

let dir: string;
let bao: OpenBaoServer;
let scim: ScimServer;
let cli: ProvkeyCli;

/** What provkey sent to OpenBao (the harness's own calls use the root token). */
function provkeyVaultRequests(): AuditedRequest[] {
  return bao.auditedRequests().filter((r) => !r.policies.includes('root'));
}

/** Runs `run` and returns what it cost at both servers. */
async function counted<T>(run: () => Promise<T>): Promise<{ value: T; vault: AuditedRequest[]; scim: LoggedRequest[] }> {
  const vaultMark = provkeyVaultRequests().length;
  const scimMark = scimRequests(scim.stderr()).length;
  const value = await run();
  return { value, vault: provkeyVaultRequests().slice(vaultMark), scim: scimRequests(scim.stderr()).slice(scimMark) };
}

/** The current value of each key, straight from Vault (root token), made known to the leak scanner. */
async function currentValues(keys: string[]): Promise<Map<string, string>> {
  const values = new Map<string, string>();
  for (const key of keys) {
    const state = await bao.api('GET', `${MOUNT}/data/${PREFIX}/${key}/state`);
    const current = (state.body.data.data.versions as { id: string; label: string }[]).find((v) => v.label === 'current')!;
    const value = (await bao.api('GET', `${MOUNT}/data/${PREFIX}/${key}/value?version=${current.id}`)).body.data.data.value as string;
    values.set(key, cli.scanner.addSecret(value, `${key} v${current.id} (from Vault)`));
  }
  return values;
}

function summary(requests: { method?: string; operation?: string; path: string }[]): string {
  const byKind = new Map<string, number>();
  for (const r of requests) {
    const kind = `${r.method ?? r.operation} ${r.path.replace(/\/counts-[0-9a-f]+\//, '/').replace(/\/(scim-\d+|strict-\d+)(\/|$)/, '/KEY$2')}`;
    byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
  }
  return [...byKind].map(([kind, n]) => `${n}× ${kind}`).join('\n');
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provkey-request-counts-'));
  bao = await startOpenBao({ audit: true });
  const token = await bao.createPolicyToken('provkey', shippedPolicy(MOUNT, PREFIX), { ttl: '1h', renewable: true });
  const adminToken = `adm_${randomBytes(24).toString('base64url')}`;
  scim = await startScimServer({ adminToken, log: true });
  const config = path.join(dir, 'provkey.yaml');
  const keyLines = ALL.flatMap((key) => [
    `  ${key}:`,
    '    store: vault',
    `    rotation: { interval: 30d, grace: ${STRICT.includes(key) ? '0s' : '1h'} }`,
    '    target:',
    '      type: scim',
    `      url: ${scim.url}`,
    `      applier: { type: http, url: ${scim.adminUrl}, authRef: env:SCIM_ADMIN_TOKEN }`,
  ]);
  writeFileSync(
    config,
    ['stores:', '  vault:', '    type: vault', `    address: ${bao.addr}`, `    mount: ${MOUNT}`, `    prefix: ${PREFIX}`, 'keys:', ...keyLines, ''].join('\n'),
  );
  cli = new ProvkeyCli({
    cwd: dir,
    config,
    env: { VAULT_TOKEN: token, SCIM_ADMIN_TOKEN: adminToken, HOME: dir, VAULT_ADDR: undefined, VAULT_NAMESPACE: undefined, VAULT_CACERT: undefined },
  });
  cli.scanner.addSecret(token, 'Vault token (provkey policy)');
  cli.scanner.addSecret(bao.rootToken, 'Vault root token');
  cli.scanner.addSecret(adminToken, 'SCIM admin token');
  const limit = pLimit(4);
  const added = await Promise.all(ALL.map((key) => limit(() => cli.run(['add', key]))));
  for (const run of added) expect(run.code, describeRun(run)).toBe(0);
});

afterEach(() => cli.scanner.assertClean());

afterAll(async () => {
  await scim?.stop();
  await bao?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe(`requests per key, ${ALL.length} SCIM keys in OpenBao, one SCIM server`, () => {
  it(`rotating ${KEYS.length} keys with overlap: at most 3 SCIM and 8 Vault requests per rotated key, and every key proven`, async () => {
    const before = await currentValues(KEYS);
    const { value: run, vault, scim: sent } = await counted(() => cli.json<{ results: { key: string; outcome: string }[] }>(['rotate', ...KEYS]));
    expect(run.result.code, describeRun(run.result)).toBe(0);
    expect(run.data.results.map((r) => r.outcome)).toEqual(KEYS.map(() => 'rotated'));
    const after = await currentValues(KEYS);

    // Every key's own proof was made: its new token was sent (and accepted) by provkey itself.
    for (const key of KEYS) {
      const digest = sha256Hex(after.get(key)!).slice(0, 8);
      expect(sent.filter((r) => r.token === digest && r.method === 'GET' && r.status === 200).length, `${key}: no accepted request with its new token`).toBeGreaterThanOrEqual(1);
      expect(await bearerStatus(scim.url, after.get(key)!)).toBe(200);
      // Overlap: the old one still works until its grace period ends.
      expect(await bearerStatus(scim.url, before.get(key)!)).toBe(200);
    }
    console.log(`rotate (overlap), ${KEYS.length} keys: ${sent.length} SCIM requests (${(sent.length / KEYS.length).toFixed(2)} per key), ${vault.length} Vault requests (${(vault.length / KEYS.length).toFixed(2)} per key)\n--- SCIM\n${summary(sent)}\n--- Vault\n${summary(vault)}`);
    expect(sent.length / KEYS.length, summary(sent)).toBeLessThanOrEqual(3);
    // Per key: everything under its path. Per run: the token's own check (lookup-self), once.
    for (const key of KEYS) expect(vault.filter((r) => r.path.includes(`/${PREFIX}/${key}/`)).length, `${key}\n${summary(vault)}`).toBeLessThanOrEqual(8);
    expect(vault.filter((r) => !KEYS.some((key) => r.path.includes(`/${PREFIX}/${key}/`))).length, summary(vault)).toBeLessThanOrEqual(1);
  });

  it(`rotating ${STRICT.length} keys without overlap: each old token is proven rejected by its own request; no remove repeats the replace`, async () => {
    const before = await currentValues(STRICT);
    const { value: run, vault, scim: sent } = await counted(() => cli.json<{ results: { key: string; outcome: string }[] }>(['rotate', ...STRICT]));
    expect(run.result.code, describeRun(run.result)).toBe(0);
    expect(run.data.results.map((r) => r.outcome)).toEqual(STRICT.map(() => 'rotated'));
    const after = await currentValues(STRICT);
    for (const key of STRICT) {
      const oldDigest = sha256Hex(before.get(key)!).slice(0, 8);
      expect(sent.filter((r) => r.token === oldDigest && r.method === 'GET' && r.status === 401).length, `${key}: its old token was not proven rejected`).toBeGreaterThanOrEqual(1);
      expect(await bearerStatus(scim.url, before.get(key)!)).toBe(401);
      expect(await bearerStatus(scim.url, after.get(key)!)).toBe(200);
    }
    console.log(`rotate (no overlap), ${STRICT.length} keys: ${sent.length} SCIM requests (${(sent.length / STRICT.length).toFixed(2)} per key), ${vault.length} Vault requests (${(vault.length / STRICT.length).toFixed(2)} per key)\n--- SCIM\n${summary(sent)}\n--- Vault\n${summary(vault)}`);
    // One replace per key, no remove after it.
    expect(sent.filter((r) => r.path === '/admin/tokens'), summary(sent)).toHaveLength(STRICT.length);
    // Its own: the replace, the new token accepted, the old one rejected; the server's facts once.
    expect(sent.length, summary(sent)).toBeLessThanOrEqual(3 * STRICT.length + 3);
  });

  it('status, test and rotate --due (nothing due) read each key once', async () => {
    const status = await counted(() => cli.json<{ keys: unknown[] }>(['status']));
    expect(status.value.result.code, describeRun(status.value.result)).toBe(0);
    const due = await counted(() => cli.run(['rotate', '--due']));
    expect(due.value.code, describeRun(due.value)).toBe(0);
    const tested = await counted(() => cli.run(['test']));
    expect(tested.value.code, describeRun(tested.value)).toBe(0);
    // test: each key's state and current value read once, its result written once; at the SCIM
    // server each key's own Entra query, and the server's facts once.
    const testStateReads = tested.vault.filter((r) => r.operation === 'read' && r.path.endsWith('/state'));
    expect(testStateReads.length, summary(tested.vault)).toBe(ALL.length);
    expect(tested.vault.length, summary(tested.vault)).toBeLessThanOrEqual(3 * ALL.length + 1);
    expect(tested.scim.length, summary(tested.scim)).toBeLessThanOrEqual(ALL.length + 3);
    console.log(`test (all keys): ${tested.vault.length} Vault requests, ${tested.scim.length} SCIM requests\n${summary(tested.vault)}\n${summary(tested.scim)}`);
    for (const [what, requests] of [['status', status.vault], ['rotate --due', due.vault]] as const) {
      const stateReads = requests.filter((r) => r.operation === 'read' && r.path.endsWith('/state'));
      console.log(`${what}: ${requests.length} Vault requests\n${summary(requests)}`);
      expect(stateReads.length, `${what}\n${summary(requests)}`).toBe(ALL.length);
      expect(requests.length, `${what}\n${summary(requests)}`).toBeLessThanOrEqual(ALL.length + 2);
    }
    expect(due.scim, summary(due.scim)).toEqual([]);
  });
});
