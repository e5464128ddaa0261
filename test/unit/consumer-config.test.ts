import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/core/errors.ts';

// The consumers: section (docs/consumers.md) is checked at load, before anything is opened:
// one-line errors naming the exact field, exit 2.
const dir = mkdtempSync(path.join(tmpdir(), 'provkey-consumer-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const scim = '    target: { type: scim, url: "https://app.example.com/scim/v2", applier: { type: store } }';
const ldap = '    target: { type: ldap, urls: ["ldaps://ldap.example.com"], bindDn: "cn=svc,dc=x", searchBase: "dc=x" }';
const entra = (extra = '') => `      - { type: entra, servicePrincipalId: sp, jobId: job${extra} }`;

async function load(target: string, consumers: string[]) {
  const file = path.join(dir, `c-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, ['keys:', '  app:', target, '    consumers:', ...consumers, ''].join('\n'));
  return loadConfig(file, { mustExist: true });
}

async function refusal(target: string, consumers: string[]): Promise<ConfigError> {
  const error = await load(target, consumers).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as ConfigError).exitCode).toBe(2);
  expect((error as Error).message).not.toContain('\n');
  return error as ConfigError;
}

describe('consumers in the config', () => {
  it('accepts every kind, with defaults filled in', async () => {
    const config = await load(scim, [
      entra(),
      '      - { type: okta, orgUrl: "https://example.okta.com", appId: 0oa1, apiTokenRef: "env:OKTA" }',
      '      - { type: file, path: /run/agent/token, owner: { uid: 1000 } }',
      '      - { type: exec, command: [/usr/local/bin/push-token] }',
      '      - { type: store, probe: { url: "https://agent.example.com/ready" } }',
    ]);
    const consumers = config.keys.app!.config.consumers;
    expect(consumers.map((c) => c.type)).toEqual(['entra', 'okta', 'file', 'exec', 'store']);
    expect(consumers[0]).toMatchObject({ graphUrl: 'https://graph.microsoft.com/v1.0', auth: { method: 'default' }, restart: false, retries: 4 });
  });

  it('refuses an entra consumer on an LDAP key, naming the field', async () => {
    expect((await refusal(ldap, [entra()])).message).toContain('keys.app.consumers.0.type');
  });

  it('refuses a Graph URL that is not https, even on loopback', async () => {
    expect((await refusal(scim, [entra(', graphUrl: "http://127.0.0.1:8080/v1.0"')])).message).toContain('keys.app.consumers.0.graphUrl: must be an https:// URL');
  });

  it('refuses two consumers with one name', async () => {
    expect((await refusal(scim, ['      - { type: file, name: a, path: x }', '      - { type: file, name: a, path: y }'])).message).toContain('keys.app.consumers.1.name');
  });

  it('refuses an unknown consumer type and an entra consumer without its job', async () => {
    expect((await refusal(scim, ['      - { type: pagerduty }'])).message).toContain('keys.app.consumers.0');
    expect((await refusal(scim, ['      - { type: entra, servicePrincipalId: sp }'])).message).toContain('jobId');
  });

  it('refuses a plain-http Okta org that is not loopback', async () => {
    expect((await refusal(scim, ['      - { type: okta, orgUrl: "http://example.okta.com", appId: a, apiTokenRef: "env:OKTA" }'])).message).toContain('keys.app.consumers.0.orgUrl');
  });
});
