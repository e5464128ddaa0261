// provkey scan against a vault store (real OpenBao): findings are identified from the state
// secrets alone. The scan runs under a token that may read `<key>/state` and list keys, and
// nothing else: had scan read any value, OpenBao would have refused it.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProvkeyCli, describeRun, secretFingerprint } from '../harness/cli.ts';
import { startOpenBao, type OpenBaoServer } from '../harness/servers/openbao.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PREFIX = `scan-${randomBytes(3).toString('hex')}`;

describe('provkey scan with a vault store', () => {
  let dir: string;
  let bao: OpenBaoServer;
  let scim: ScimServer;
  let cli: ProvkeyCli;
  let stateOnlyToken: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'provkey-scan-vault-'));
    bao = await startOpenBao();
    const policy = readFileSync(path.join(repoRoot, 'docs/vault-policy.hcl'), 'utf8').replace(/(path "[^"]+\/)provkey\//g, `$1${PREFIX}/`);
    const token = await bao.createPolicyToken('provkey-scan-full', policy, { ttl: '1h' });
    stateOnlyToken = await bao.createPolicyToken(
      'provkey-scan-state-only',
      `path "secret/data/${PREFIX}/+/state" { capabilities = ["read"] }\npath "secret/metadata/${PREFIX}/*" { capabilities = ["list"] }\n`,
      { ttl: '1h' },
    );
    const adminToken = `adm_${randomBytes(24).toString('base64url')}`;
    scim = await startScimServer({ adminToken, propagationMs: 0 });
    const config = path.join(dir, 'provkey.yaml');
    writeFileSync(
      config,
      [
        'stores:',
        `  vault: { type: vault, address: "${bao.addr}", mount: secret, prefix: ${PREFIX} }`,
        'keys:',
        '  app:',
        '    store: vault',
        '    rotation: { interval: 30d, grace: 1h }',
        `    target: { type: scim, url: "${scim.url}", propagationTimeout: 5s, applier: { type: http, url: "${scim.adminUrl}", authRef: "env:SCIM_ADMIN_TOKEN" } }`,
        '',
      ].join('\n'),
    );
    cli = new ProvkeyCli({ cwd: dir, config, env: { VAULT_TOKEN: token, SCIM_ADMIN_TOKEN: adminToken, HOME: dir, VAULT_ADDR: undefined, VAULT_NAMESPACE: undefined, VAULT_CACERT: undefined } });
    for (const [value, label] of [[token, 'Vault token'], [stateOnlyToken, 'state-only Vault token'], [bao.rootToken, 'Vault root token'], [adminToken, 'SCIM admin token']] as const) cli.scanner.addSecret(value, label);
  });

  afterAll(async () => {
    try {
      cli?.scanner.assertClean();
    } finally {
      await scim?.stop();
      await bao?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the current and previous versions from state alone, under a token that cannot read a value', async () => {
    expect((await cli.run(['add', 'app'])).code).toBe(0);
    const v1 = await cli.reveal('app', 'app v1');
    expect((await cli.run(['rotate', 'app'])).code).toBe(0);
    const v2 = await cli.reveal('app', 'app v2');
    writeFileSync(path.join(dir, 'leak.txt'), `old=${v1}\nnew=${v2}\n`);

    // The state-only token really cannot read values: get --reveal is refused.
    const refused = await cli.run(['get', 'app', '--reveal'], { env: { VAULT_TOKEN: stateOnlyToken } });
    expect(refused.code, describeRun(refused)).toBe(6);

    const { result, data } = await cli.json<{ findings: { line: number; key: string; store: string; label: string; versionId: string; fingerprint: string; contain: string | null }[] }>(['scan', 'leak.txt'], { env: { VAULT_TOKEN: stateOnlyToken } });
    expect(result.code, describeRun(result)).toBe(3);
    expect(data.findings.map((f) => [f.line, f.key, f.store, f.label, f.versionId, f.fingerprint])).toEqual([
      [1, 'app', 'vault', 'previous', '1', secretFingerprint(v1)],
      [2, 'app', 'vault', 'current', '2', secretFingerprint(v2)],
    ]);
  });
});
