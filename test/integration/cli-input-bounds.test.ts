import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PROVKEY_BIN, ProvkeyCli, describeRun, type RunResult } from '../harness/cli.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

// Items 8, 12 and 13 of issue 7: every bad input gets one line naming the field and exit 2;
// no error quotes a file's content; checking nothing is never success.

let root: string;
let server: ScimServer;
const adminToken = `admin-${randomBytes(18).toString('base64url')}`;
/** Text that must never appear in an error: it stands for a secret inside a file. */
const SECRET_IN_FILE = `SeCrEt${randomBytes(18).toString('hex')}`;

beforeAll(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'provkey-bounds-'));
  server = await startScimServer({ adminToken });
});
afterAll(async () => {
  await server?.stop();
  rmSync(root, { recursive: true, force: true });
});

let cli: ProvkeyCli;
let dir: string;
afterEach(() => cli?.scanner.assertClean());

/** A fresh directory with provkey.yaml (when given) and a CLI bound to it. */
function workspace(yaml?: string, env: Record<string, string> = {}): { dir: string; config: string } {
  dir = mkdtempSync(path.join(root, 'w-'));
  const config = path.join(dir, 'provkey.yaml');
  if (yaml !== undefined) writeFileSync(config, yaml);
  cli = new ProvkeyCli({ cwd: dir, env: { SCIM_ADMIN_TOKEN: adminToken, ...env } });
  cli.scanner.addSecret(adminToken, 'SCIM admin token');
  cli.scanner.addSecret(SECRET_IN_FILE, 'secret in a file');
  return { dir, config };
}

const scimKey = (extra: string[] = [], target: string[] = []) => [
  'keys:',
  '  app:',
  ...extra.map((l) => `    ${l}`),
  '    target:',
  '      type: scim',
  // Rows are built before the server starts: they fail before any request, on a closed port.
  `      url: ${server?.url ?? 'http://127.0.0.1:9/scim/v2'}`,
  '      propagationTimeout: 5s',
  ...target.map((l) => `      ${l}`),
  `      applier: { type: http, url: ${server?.adminUrl ?? 'http://127.0.0.1:9/admin'}, authRef: "env:SCIM_ADMIN_TOKEN" }`,
];

/** Exit 2, one line on stderr naming `field`, no stack, no quoted file content. */
function expectUsage(run: RunResult, field: RegExp): void {
  expect(run.code, describeRun(run)).toBe(2);
  const lines = run.stderr.trim().split('\n');
  expect(lines.filter((l) => !l.startsWith('(run with --help')), describeRun(run)).toHaveLength(1);
  expect(run.stderr, describeRun(run)).toMatch(field);
  expect(run.stderr).not.toMatch(/\n\s+at |internal error/);
  expect(run.stderr + run.stdout).not.toContain(SECRET_IN_FILE);
}

interface Row {
  name: string;
  yaml?: string[];
  args: string[];
  input?: string;
  field: RegExp;
}

const configRows: Row[] = [
  // Item 8: no error quotes the file it could not use.
  { name: 'a value where the config should be a mapping', yaml: [SECRET_IN_FILE], args: ['status'], field: /^provkey: config: expected Object, got a string( \(provkey\.yaml line 1, column 1\))?$/m },
  { name: 'a YAML syntax error next to a secret', yaml: ['keys:', `  app: "${SECRET_IN_FILE}`, '  other: x'], args: ['status'], field: /config line \d+, column \d+: invalid YAML: /m },
  { name: 'a duplicate key holding a secret', yaml: ['audit: { path: a }', `audit: "${SECRET_IN_FILE}"`], args: ['status'], field: /config line 2, column 1: invalid YAML: a key appears twice/ },
  { name: 'an unknown tag', yaml: [`audit: !vault ${SECRET_IN_FILE}`], args: ['status'], field: /invalid YAML: an unknown tag/ },
  { name: 'a secret where a number belongs', yaml: ['defaults:', `  concurrency: "${SECRET_IN_FILE}"`], args: ['status'], field: /^provkey: defaults\.concurrency: expected number, got a string( \(provkey\.yaml line \d+, column \d+\))?$/m },
  { name: 'a secret where a choice belongs', yaml: [...scimKey(), `    format: { type: "${SECRET_IN_FILE}" }`], args: ['test'], field: /keys\.app\.format\.type: must be one of/ },
  { name: 'a secret as an unknown field name', yaml: [`${SECRET_IN_FILE}x${SECRET_IN_FILE}: 1`], args: ['status'], field: /config: unknown field \(its name is not shown/ },
  // Item 12: paths, names, durations.
  { name: 'an empty key file path', yaml: ['stores:', '  default: { type: file, keyFile: "" }', ...scimKey()], args: ['status'], field: /stores\.default\.keyFile: must not be empty/ },
  { name: 'a NUL in the audit path', yaml: ['audit: { path: "a\\0b" }', ...scimKey()], args: ['status'], field: /audit\.path: contains a NUL character/ },
  { name: 'a NUL in a CA file path', yaml: scimKey([], ['tls: { caFile: "/etc/ssl/\\0x.pem" }']), args: ['test'], field: /keys\.app\.target\.tls\.caFile: contains a NUL/ },
  { name: 'an empty exec command word', yaml: ['keys:', '  app:', '    target:', `      type: scim`, `      url: http://127.0.0.1:9/scim/v2`, '      applier: { type: exec, command: [""] }'], args: ['status'], field: /keys\.app\.target\.applier\.command\.0: must not be empty/ },
  { name: '__proto__ as a store name', yaml: ['stores:', '  __proto__: { type: file }', ...scimKey()], args: ['status'], field: /stores: "__proto__" is a reserved name/ },
  { name: 'constructor as a key name', yaml: ['keys:', '  constructor: { target: { type: scim, url: "https://a.example/scim", applier: { type: store } } }'], args: ['status'], field: /keys: "constructor" is a reserved name/ },
  { name: 'a 20-digit duration', yaml: scimKey(['rotation: { interval: 99999999999999999999d }']), args: ['status'], field: /keys\.app\.rotation\.interval: is not a duration/ },
  { name: 'a duration over ten years', yaml: scimKey(['rotation: { interval: 4000d }']), args: ['status'], field: /keys\.app\.rotation\.interval: longer than the maximum of 3650d/ },
  { name: 'a timeout past what a timer can hold', yaml: scimKey([], ['requestTimeout: 30d']), args: ['status'], field: /keys\.app\.target\.requestTimeout: longer than the maximum of 1d/ },
  { name: 'a string longer than any field', yaml: [`audit: { path: "${'a'.repeat(5000)}" }`, ...scimKey()], args: ['status'], field: /audit\.path: longer than 4096 characters/ },
];

const flagRows: Row[] = [
  { name: 'generate --length with 20 digits (hung at 3.7 GB)', args: ['generate', '--length', '99999999999999999999'], field: /--length: not a positive whole number of at most 9 digits/ },
  { name: 'generate --length past the policy bound', args: ['generate', '--length', '100000'], field: /--length: must be a whole number from 8 to 256/ },
  { name: 'generate --bytes past the policy bound', args: ['generate', '--format', 'hex', '--bytes', '5000'], field: /--bytes: must be a whole number from 8 to 1024/ },
  { name: 'a key name that cannot be one', args: ['get', `x${SECRET_IN_FILE} y`], field: /^provkey: key: not a key name/m },
  { name: 'an argument of 5000 characters', args: ['rotate', 'a'.repeat(5000)], field: /^provkey: argument \d+ is longer than 4096 characters$/m },
  { name: 'generate --exclude of 300 characters', args: ['generate', '--format', 'password', '--exclude', '!'.repeat(300)], field: /--exclude: at most 256 characters/ },
  { name: 'drill --rto with 20 digits', args: ['drill', 'compromise', 'app', '--rto', '99999999999999999999s'], field: /--rto: is not a duration/ },
];

const importRows: Row[] = [
  { name: 'import of a value with NUL', args: ['import', 'app'], input: `pk_${'a'.repeat(20)}\0${'b'.repeat(30)}\n`, field: /value for app: stdin contains a control character/ },
  { name: 'import of a value with an escape sequence', args: ['import', 'app'], input: `\u001b[2J${randomBytes(32).toString('hex')}\n`, field: /value for app: stdin contains a control character/ },
  { name: 'import --apply of a 3-character value', args: ['import', 'app', '--apply'], input: 'abc\n', field: /value for app: at most \d+ bits of entropy/ },
  { name: 'import of a long value with no entropy', args: ['import', 'app'], input: `${'ab'.repeat(40)}\n`, field: /value for app: at most \d+ bits of entropy/ },
  { name: 'import --apply of a random value that is not a token', args: ['import', 'app', '--apply'], input: `${randomBytes(32).toString('base64url')}\n`, field: /value for app: not a provkey token/ },
  { name: 'import --apply of a token with a bad checksum', args: ['import', 'app', '--apply'], input: `pk_${randomBytes(40).toString('hex').slice(0, 43)}zzzzzz\n`, field: /value for app: not a provkey token \(checksum mismatch\)/ },
  { name: 'import of 100 KB on stdin', args: ['import', 'app'], input: `${'x'.repeat(100_000)}\n`, field: /value for app: stdin holds more than 65536 bytes/ },
];

describe('bad input: one line naming the field, exit 2, nothing quoted', () => {
  it.each(configRows)('config: $name', async (row) => {
    const { config } = workspace(`${row.yaml!.join('\n')}\n`);
    expectUsage(await cli.run(row.args, { config }), row.field);
    expect(existsSync(path.join(dir, '.provkey')), 'nothing was created').toBe(false);
  });

  it.each(flagRows)('flags: $name', async (row) => {
    const { config } = workspace(`${scimKey().join('\n')}\n`);
    const run = await cli.run(row.args, { config, timeoutMs: 20_000 });
    expect(run.signal, 'finished, did not hang').toBeNull();
    expectUsage(run, row.field);
  });

  it.each(importRows)('stdin: $name', async (row) => {
    const { config } = workspace(`${scimKey().join('\n')}\n`);
    expectUsage(await cli.run(row.args, { config, input: row.input! }), row.field);
    expect(existsSync(path.join(dir, '.provkey', 'store.enc')), 'nothing was stored').toBe(false);
  });

  it('an empty --config or PROVKEY_CONFIG names itself instead of reading the working directory', async () => {
    workspace();
    expectUsage(await cli.run(['status'], { config: '' }), /^provkey: --config: must not be empty$/m);
    expectUsage(await cli.run(['status'], { env: { PROVKEY_CONFIG: '' } }), /^provkey: PROVKEY_CONFIG: is set but empty/m);
  });

  it('stdin: import of binary (not UTF-8) data', () => {
    const { config } = workspace(`${scimKey().join('\n')}\n`);
    const run = spawnSync(process.execPath, [PROVKEY_BIN, '--config', config, 'import', 'app'], { cwd: dir, input: Buffer.from([0xff, 0xfe, 0x00, 0x41, 0x80, 0x0a]), env: { ...process.env, NO_COLOR: '1' }, encoding: 'utf8' });
    expectUsage({ args: ['import', 'app'], code: run.status, signal: run.signal, stdout: run.stdout, stderr: run.stderr, ms: 0 }, /value for app: stdin is not UTF-8 text/);
  });

  it('--config pointed at the store key prints no byte of the key', async () => {
    const { config } = workspace(`${scimKey().join('\n')}\n`);
    mkdirSync(path.join(dir, '.provkey'));
    const key = randomBytes(32).toString('base64');
    writeFileSync(path.join(dir, '.provkey', 'store.key'), `${key}\n`, { mode: 0o600 });
    cli.scanner.addSecret(key, 'store key');
    for (const args of [['status'], ['--json', 'status'], ['--verbose', 'test']]) {
      const run = await cli.run(args, { config: path.join(dir, '.provkey', 'store.key') });
      expect(run.code, describeRun(run)).toBe(2);
      for (let i = 0; i + 8 <= key.length; i += 4) expect(run.stderr + run.stdout).not.toContain(key.slice(i, i + 8));
    }
    void config;
  });
});

describe('checking nothing is never success', () => {
  it('no provkey.yaml: status, test, audit verify and rotate --due exit 2', async () => {
    workspace();
    for (const args of [['status'], ['test'], ['audit', 'verify'], ['rotate', '--due']]) {
      const run = await cli.run(args);
      expect(run.code, describeRun(run)).toBe(2);
      expect(run.stderr).toMatch(/provkey\.yaml does not exist/);
      expect(run.stdout).not.toMatch(/✔/);
    }
  });

  it('a config with no keys: status, test and rotate --all exit 2', async () => {
    const { config } = workspace('keys: {}\n');
    for (const args of [['status'], ['--json', 'status'], ['test'], ['rotate', '--all']]) {
      const run = await cli.run(args, { config });
      expect(run.code, describeRun(run)).toBe(2);
      expect(run.stderr).toMatch(/defines no keys, so there is nothing to check/);
    }
  });

  it('audit verify with no log and an empty store is not a ✔', async () => {
    const { config } = workspace(`${scimKey().join('\n')}\n`);
    const run = await cli.run(['audit', 'verify'], { config });
    expect(run.code, describeRun(run)).toBe(1);
    expect(run.stdout).not.toContain('✔');
    expect(run.stderr).toMatch(/nothing was verified/);
  });

  it('audit verify with a wrong passphrase fails with the store\'s exit code, never ✔', async () => {
    const yaml = ['stores:', '  default: { type: file, passphraseEnv: PK_PASS }', ...scimKey()].join('\n');
    const { config } = workspace(`${yaml}\n`, { PK_PASS: 'correct horse battery staple' });
    cli.scanner.addSecret('correct horse battery staple', 'passphrase');
    const added = await cli.run(['add', 'app'], { config });
    expect(added.code, describeRun(added)).toBe(0);
    expect((await cli.run(['audit', 'verify'], { config })).code).toBe(0);
    const wrong = await cli.run(['audit', 'verify'], { config, env: { PK_PASS: 'wrong horse battery staple' } });
    expect(wrong.code, describeRun(wrong)).toBe(6);
    expect(wrong.stdout).not.toContain('✔');
    expect(wrong.stderr).toMatch(/not checked against the store: app .*wrong key file or passphrase/);
    const json = await cli.json<{ ok: boolean }>(['audit', 'verify'], { config, env: { PK_PASS: 'wrong horse battery staple' } });
    expect(json.result.code).toBe(6);
    expect(json.data.ok).toBe(false);
  });

  it('status on a config that test refuses (plain http to a non-loopback host) exits 2, like test', async () => {
    const yaml = ['keys:', '  app:', '    target:', '      type: scim', '      url: http://scim.example.com/scim/v2', '      applier: { type: store }'].join('\n');
    const { config } = workspace(`${yaml}\n`);
    for (const args of [['status'], ['test'], ['history', 'app'], ['get', 'app'], ['audit', 'verify']]) {
      const run = await cli.run(args, { config });
      expect(run.code, describeRun(run)).toBe(2);
      expect(run.stderr).toMatch(/keys\.app\.target\.url: http:\/\/scim\.example\.com is plain http to a non-loopback host/);
    }
  });

  it('init --force keeps a config\'s keys, and a kept store key is not reported as created', async () => {
    const { config } = workspace(`${scimKey().join('\n')}\n`);
    const before = readFileSync(config, 'utf8');
    const forced = await cli.run(['init', '--force'], { config });
    expect(forced.code, describeRun(forced)).toBe(2);
    expect(forced.stderr).toMatch(/init --force: .* defines 1 key\(s\) \(app\)/);
    expect(readFileSync(config, 'utf8')).toBe(before);

    // A config that no longer loads still names its keys; a file that is no config is not overwritten.
    writeFileSync(config, `${before}    colour: blue\n`);
    const invalid = await cli.run(['init', '--force'], { config });
    expect(invalid.code, describeRun(invalid)).toBe(2);
    expect(invalid.stderr).toMatch(/defines 2 key\(s\) \(app, fresh\)|defines 1 key\(s\) \(app\)/);
    const keyLike = path.join(dir, 'not-a-config.key');
    writeFileSync(keyLike, `${SECRET_IN_FILE}\n`);
    const notConfig = await cli.run(['init', '--force'], { config: keyLike });
    expect(notConfig.code, describeRun(notConfig)).toBe(2);
    expect(notConfig.stderr).toMatch(/is not a YAML mapping, so not a provkey config; it is not overwritten/);
    expect(readFileSync(keyLike, 'utf8')).toBe(`${SECRET_IN_FILE}\n`);

    writeFileSync(config, 'keys: {}\n');
    const first = await cli.run(['init', '--force'], { config });
    expect(first.code, describeRun(first)).toBe(0);
    expect(first.stdout).toMatch(/created the store key/);
    const key = readFileSync(path.join(dir, '.provkey', 'store.key'), 'utf8');
    cli.scanner.addSecret(key.trim(), 'store key');
    const again = await cli.run(['init', '--force'], { config });
    expect(again.code, describeRun(again)).toBe(0);
    expect(again.stdout).not.toMatch(/created the store key/);
    expect(again.stdout).toMatch(/kept the existing store and its key/);
    expect(readFileSync(path.join(dir, '.provkey', 'store.key'), 'utf8')).toBe(key);
  });
});
