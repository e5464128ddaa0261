import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/audit-log.js';
import { verifyAuditLog } from '../../src/audit/verify.js';
import { parseConfigText } from '../../src/config/located.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'provkey-unit-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('audit log', () => {
  async function writeThree(file: string) {
    const log = new AuditLog(file);
    for (const event of ['key.added', 'rotate.finished', 'key.tested']) await log.append({ event, key: 'app', outcome: 'ok', fingerprint: 'sha256:000000000000' });
  }

  it('chains entries and verifies an untouched log', async () => {
    const file = path.join(dir, 'audit.jsonl');
    await writeThree(file);
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.seq)).toEqual([1, 2, 3]);
    expect(lines[1].prev).toBe(lines[0].hash);
    expect(await verifyAuditLog(file)).toMatchObject({ ok: true, entries: 3 });
  });

  it('finds an edited line, a removed line, reordered lines and a truncated tail', async () => {
    const file = path.join(dir, 'audit.jsonl');
    await writeThree(file);
    const original = readFileSync(file, 'utf8');
    const lines = original.trim().split('\n');

    writeFileSync(file, original.replace('"rotate.finished"', '"rotate.skipped"'));
    expect(await verifyAuditLog(file)).toMatchObject({ ok: false, line: 2, problem: expect.stringMatching(/edited/) });

    writeFileSync(file, `${[lines[0], lines[2]].join('\n')}\n`);
    expect(await verifyAuditLog(file)).toMatchObject({ ok: false, line: 2 });

    writeFileSync(file, `${[lines[1], lines[0], lines[2]].join('\n')}\n`);
    expect(await verifyAuditLog(file)).toMatchObject({ ok: false, line: 1 });

    writeFileSync(file, original.slice(0, -20));
    expect(await verifyAuditLog(file)).toMatchObject({ ok: false, problem: 'last line is truncated' });
  });

  it('concurrent appends from one process keep one chain', async () => {
    const file = path.join(dir, 'audit.jsonl');
    const log = new AuditLog(file);
    await Promise.all(Array.from({ length: 20 }, (_, i) => log.append({ event: `e${i}` })));
    expect(await verifyAuditLog(file)).toMatchObject({ ok: true, entries: 20 });
  });
});

describe('config errors name the field', () => {
  const parse = (text: string) => () => parseConfigText(text, path.join(dir, 'provkey.yaml'));
  const scim = 'target: { type: scim, url: "https://app.example.com/scim/v2", applier: { type: store } }';

  it('accepts a minimal key and fills defaults', () => {
    const config = parseConfigText(`keys:\n  app:\n    ${scim}\n`, path.join(dir, 'provkey.yaml'));
    expect(config.keys.app!.storeName).toBe('default');
    expect(config.keys.app!.rotation).toEqual({ intervalMs: 30 * 86_400_000, graceMs: 86_400_000 });
    expect(config.stores.default!.type).toBe('file');
  });
  it('unknown fields', () => {
    expect(parse(`keys:\n  app:\n    ${scim}\n    colour: blue\n`)).toThrow(/^keys\.app: unknown field "colour" \(provkey.yaml line 4, column 5\)$/);
  });
  it('bad durations', () => {
    expect(parse(`keys:\n  app:\n    ${scim}\n    rotation: { interval: 2 days }\n`)).toThrow(/keys\.app\.rotation\.interval: is not a duration/);
  });
  it('unknown store, bad names, invalid YAML, wrong types', () => {
    expect(parse(`keys:\n  app:\n    store: nope\n    ${scim}\n`)).toThrow(/keys\.app\.store: no store named "nope"/);
    expect(parse(`keys:\n  Bad Name:\n    ${scim}\n`)).toThrow(/keys\.Bad Name/);
    expect(parse('keys: [\n')).toThrow(/invalid YAML/);
    expect(parse(`keys:\n  app:\n    target: { type: smtp }\n`)).toThrow(/keys\.app\.target/);
    expect(parse(`keys:\n  app:\n    target: { type: scim, url: "x", applier: { type: http, url: "y", authRef: "plaintext" } }\n`)).toThrow(/authRef: must be a reference/);
  });
});

describe('config errors never quote the file (issue 7, item 8)', () => {
  const secret = `Sx${'9f3a'.repeat(10)}`;
  const parse = (text: string) => () => parseConfigText(text, path.join(dir, 'provkey.yaml'));
  it.each([
    ['a bare value', secret, /^config: expected Object, got a string( \(provkey\.yaml line \d+, column \d+\))?$/],
    ['an unterminated quote', `keys:\n  app: "${secret}\n`, /^config line \d+, column \d+: invalid YAML: /],
    ['a duplicate key', `audit: {}\naudit: ${secret}\n`, /^config line 2, column 1: invalid YAML: a key appears twice in one mapping$/],
    ['a duplicate key in a nested mapping', `keys:\n  a: {}\n  b: {}\n  a: ${secret}\n`, /^config line 4, column 3: invalid YAML: a key appears twice in one mapping$/],
    ['a wrong type', `defaults: { concurrency: "${secret}" }\n`, /^defaults\.concurrency: expected number, got a string( \(provkey\.yaml line \d+, column \d+\))?$/],
    ['a wrong literal', `version: "${secret}"\n`, /^version: expected 1, got a string( \(provkey\.yaml line \d+, column \d+\))?$/],
    ['a number out of range', `defaults: { concurrency: 123456789 }\n`, /^defaults\.concurrency: max value must be <=64( \(provkey\.yaml line \d+, column \d+\))?$/],
    ['a long field name', `${secret}: 1\n`, /^config: unknown field \(its name is not shown/],
  ])('%s', (_name, text, message) => {
    let error: Error | undefined;
    try {
      parse(text)();
    } catch (e) {
      error = e as Error;
    }
    expect(error?.message).toMatch(message);
    expect(error?.message).not.toContain(secret.slice(0, 12));
    expect(error?.message).not.toContain('123456789');
  });
});

describe('config bounds (issue 7, items 12 and 13)', () => {
  const parse = (text: string) => () => parseConfigText(text, path.join(dir, 'provkey.yaml'));
  const key = (extra = '', target = '') => `keys:\n  app:\n    ${extra}\n    target: { type: scim, url: "https://app.example.com/scim/v2", applier: { type: store }${target} }\n`;
  it.each([
    ['a NUL in a path', 'audit: { path: "a\\0b" }\n', /^audit\.path: contains a NUL character$/],
    ['an empty path', 'stores:\n  s: { type: file, path: "" }\n', /^stores\.s\.path: must not be empty( \(provkey\.yaml line \d+, column \d+\))?$/],
    ['__proto__ as a store', 'stores:\n  __proto__: { type: file }\n', /^stores: "__proto__" is a reserved name/],
    ['prototype as a key', 'keys:\n  prototype: {}\n', /^keys: "prototype" is a reserved name/],
    ['a 5000-character string', `audit: { path: "${'x'.repeat(5000)}" }\n`, /^audit\.path: longer than 4096 characters$/],
    ['an interval of 20 digits', key('rotation: { interval: 99999999999999999999d }'), /^keys\.app\.rotation\.interval: is not a duration/],
    ['a grace of 11 years', key('rotation: { grace: 4015d }'), /^keys\.app\.rotation\.grace: longer than the maximum of 3650d( \(provkey\.yaml line \d+, column \d+\))?$/],
    ['a request timeout of 2 days', key('', ', requestTimeout: 2d'), /^keys\.app\.target\.requestTimeout: longer than the maximum of 1d( \(provkey\.yaml line \d+, column \d+\))?$/],
    ['plain http to a non-loopback host', 'keys:\n  app: { target: { type: scim, url: "http://app.example.com/scim", applier: { type: store } } }\n', /^keys\.app\.target\.url: http:\/\/app\.example\.com is plain http to a non-loopback host/],
    ['plain LDAP to a non-loopback host', 'keys:\n  app: { target: { type: ldap, urls: ["ldap://ldap.example.com"], startTls: false, bindDn: "cn=a", searchBase: "dc=x" } }\n', /^keys\.app\.target\.urls\.0: ldap:\/\/ldap\.example\.com without StartTLS/],
    ['a file over 16 MiB', `# ${'x'.repeat(16 * 1024 * 1024)}\n`, /larger than 16777216 bytes/],
  ])('%s', (_name, text, message) => {
    expect(parse(text)).toThrow(message);
  });

  it('plain http to loopback, and with the explicit opt-out, loads', () => {
    expect(parse('keys:\n  app: { target: { type: scim, url: "http://127.0.0.1:8080/scim", applier: { type: store } } }\n')).not.toThrow();
    expect(parse('keys:\n  app: { target: { type: scim, url: "http://app.example.com/scim", allowInsecureHttp: true, applier: { type: store } } }\n')).not.toThrow();
  });
});
