// Standalone smoke check of the OpenBao harness (and of the built binary):
//
//   /work/main/node_modules/.bin/node test/harness/servers/openbao-check.ts
//
// Starts a dev server, checks the default secret/ mount is KV v2, writes and reads a
// KV v2 secret with check-and-set, uses a policy token and an AppRole login, seals and
// unseals, then stops the server and checks it is gone. Exits non-zero on any failure.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ensureOpenBao, startOpenBao, type OpenBaoServer } from './openbao.ts';

let passed = 0;
async function step(name: string, fn: () => Promise<void>): Promise<void> {
  const t0 = Date.now();
  await fn();
  passed++;
  console.log(`ok ${passed} - ${name} (${Date.now() - t0} ms)`);
}

const vaultTokenFile = join(homedir(), '.vault-token');
const hadVaultToken = existsSync(vaultTokenFile);

let bin = '';
await step('ensureOpenBao', async () => {
  bin = await ensureOpenBao();
});
console.log(`# binary: ${bin}`);

let bao!: OpenBaoServer;
await step('startOpenBao (health 200)', async () => {
  bao = await startOpenBao();
});
console.log(`# addr: ${bao.addr}`);

try {
  await step('dev server reports version, unsealed, unseal key captured', async () => {
    const h = await bao.api('GET', 'sys/health', undefined, '');
    assert.equal(h.status, 200);
    assert.equal(h.body.sealed, false);
    console.log(`# server version: ${h.body.version}`);
    assert.ok(bao.unsealKey, 'unseal key captured from stdout');
  });

  await step('default secret/ mount is KV v2', async () => {
    const r = await bao.api('GET', 'sys/mounts');
    assert.equal(r.status, 200);
    const mounts = r.body.data ?? r.body;
    assert.equal(mounts['secret/'].type, 'kv');
    assert.equal(mounts['secret/'].options.version, '2');
  });

  await step('enableKv2 + write/read with cas', async () => {
    await bao.enableKv2('provkey-kv');
    const p = 'provkey-kv/data/scim/okta';
    let r = await bao.api('POST', p, { options: { cas: 0 }, data: { token: 'v1' } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.data.version, 1);
    r = await bao.api('POST', p, { options: { cas: 0 }, data: { token: 'clobber' } });
    assert.equal(r.status, 400, 'cas=0 on an existing secret must fail');
    assert.match(JSON.stringify(r.body.errors), /check-and-set/);
    r = await bao.api('POST', p, { options: { cas: 1 }, data: { token: 'v2' } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.data.version, 2);
    r = await bao.api('GET', p);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.data.data, { token: 'v2' });
    assert.equal(r.body.data.metadata.version, 2);
    r = await bao.api('GET', `${p}?version=1`);
    assert.deepEqual(r.body.data.data, { token: 'v1' });
    r = await bao.api('GET', 'provkey-kv/config');
    assert.equal(r.status, 200);
  });

  const policy = `
path "provkey-kv/data/*"     { capabilities = ["create", "read", "update"] }
path "provkey-kv/metadata/*" { capabilities = ["read", "list"] }
`;
  await step('createPolicyToken: allowed on its path, denied elsewhere, ttl/renewable', async () => {
    const token = await bao.createPolicyToken('provkey-rw', policy, { ttl: '1h', renewable: false });
    let r = await bao.api('GET', 'provkey-kv/data/scim/okta', undefined, token);
    assert.equal(r.status, 200);
    r = await bao.api('GET', 'secret/data/anything', undefined, token);
    assert.equal(r.status, 403);
    r = await bao.api('GET', 'auth/token/lookup-self', undefined, token);
    assert.equal(r.status, 200);
    assert.ok(r.body.data.ttl > 3500 && r.body.data.ttl <= 3600, `ttl ${r.body.data.ttl}`);
    assert.equal(r.body.data.renewable, false);
    assert.deepEqual([...r.body.data.policies].sort(), ['default', 'provkey-rw']);
  });

  await step('enableAppRole + login', async () => {
    const { roleId, secretId } = await bao.enableAppRole('provkey-ci', ['provkey-rw']);
    const again = await bao.enableAppRole('provkey-ci2', ['provkey-rw']); // approle already enabled: fine
    assert.ok(again.roleId);
    const login = await bao.api('POST', 'auth/approle/login', { role_id: roleId, secret_id: secretId }, '');
    assert.equal(login.status, 200, JSON.stringify(login.body));
    const token: string = login.body.auth.client_token;
    assert.ok(login.body.auth.policies.includes('provkey-rw'));
    const r = await bao.api('GET', 'provkey-kv/data/scim/okta', undefined, token);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.data.data, { token: 'v2' });
    const bad = await bao.api('POST', 'auth/approle/login', { role_id: roleId, secret_id: 'wrong' }, '');
    assert.equal(bad.status, 400);
  });

  await step('seal -> 503, unseal -> data still there', async () => {
    await bao.seal();
    let h = await bao.api('GET', 'sys/health', undefined, '');
    assert.equal(h.status, 503);
    assert.equal(h.body.sealed, true);
    let r = await bao.api('GET', 'provkey-kv/data/scim/okta');
    assert.equal(r.status, 503);
    await bao.unseal();
    h = await bao.api('GET', 'sys/health', undefined, '');
    assert.equal(h.status, 200);
    r = await bao.api('GET', 'provkey-kv/data/scim/okta');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.data.data, { token: 'v2' });
  });
} finally {
  await step('stop', async () => {
    await bao.stop();
    await bao.stop(); // idempotent
  });
}

await step('server is gone after stop', async () => {
  await assert.rejects(fetch(`${bao.addr}/v1/sys/health`, { signal: AbortSignal.timeout(2000) }));
});

await step('no ~/.vault-token written', async () => {
  if (!hadVaultToken) assert.equal(existsSync(vaultTokenFile), false);
});

console.log(`${passed} passed, 0 failed`);
