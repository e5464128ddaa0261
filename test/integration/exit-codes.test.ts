// Item 14 of issue 7: one exit-code table (docs/cli.md), and a test that runs every command
// through every error class it can meet against real servers (SCIMMY, OpenBao, the embedded
// file store), checking the code and that the docs table lists it. The table's codes are
// also checked against src/core/errors.ts and `provkey --help`, so code, help and docs agree.

import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/core/errors.js';
import { ProvkeyCli, describeRun, runProvkey } from '../harness/cli.ts';
import { startOpenBao, type OpenBaoServer } from '../harness/servers/openbao.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const adminToken = `admin-${randomBytes(18).toString('base64url')}`;
const passphrase = `pass-${randomBytes(12).toString('base64url')}`;

/** code → meaning, from the "## Exit codes" table of docs/cli.md. */
function docsTable(): Map<number, string> {
  const text = readFileSync(path.join(repoRoot, 'docs/cli.md'), 'utf8');
  const section = text.split('## Exit codes')[1]!.split(/\n##+ /)[0]!;
  const rows = [...section.matchAll(/^\| (\d+) \| (.+) \|$/gm)];
  return new Map(rows.map((m) => [Number(m[1]), m[2]!]));
}

type ErrorClass = 'usage' | 'config' | 'rejected' | 'unavailable' | 'denied' | 'sealed' | 'needs-human';
/** Which code each class must give, and a word its docs row must contain. */
const CLASS_CODE: Record<ErrorClass, { code: number; docsWord: RegExp }> = {
  usage: { code: ExitCode.usage, docsWord: /usage/ },
  config: { code: ExitCode.usage, docsWord: /config/ },
  rejected: { code: ExitCode.failed, docsWord: /connection test failed \(the target answered and refused\)/ },
  unavailable: { code: ExitCode.unavailable, docsWord: /unreachable/ },
  denied: { code: ExitCode.denied, docsWord: /refused provkey's credentials/ },
  sealed: { code: ExitCode.sealed, docsWord: /sealed/ },
  'needs-human': { code: ExitCode.needsHuman, docsWord: /needs a human/ },
};

let scim: ScimServer;
let bao: OpenBaoServer;
let root: string;
let closedPort: number;
const seen: { command: string; errorClass: ErrorClass; code: number | null }[] = [];

/** A port nothing listens on: bound once, then released. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

beforeAll(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'provkey-exit-'));
  [scim, bao, closedPort] = await Promise.all([startScimServer({ adminToken }), startOpenBao(), freePort()]);
  await bao.enableKv2('exitkv');
});
afterAll(async () => {
  await scim?.stop();
  await bao?.stop();
  rmSync(root, { recursive: true, force: true });
});

interface World {
  dir: string;
  cli: ProvkeyCli;
  write(name: string, lines: string[]): string;
}

function world(env: Record<string, string> = {}): World {
  const dir = mkdtempSync(path.join(root, 'w-'));
  const cli = new ProvkeyCli({ cwd: dir, env: { SCIM_ADMIN_TOKEN: adminToken, VAULT_TOKEN: bao.rootToken, ...env } });
  cli.scanner.addSecret(adminToken, 'SCIM admin token');
  cli.scanner.addSecret(bao.rootToken, 'Vault root token');
  cli.scanner.addSecret(passphrase, 'store passphrase');
  return {
    dir,
    cli,
    write(name, lines) {
      const file = path.join(dir, name);
      writeFileSync(file, `${lines.join('\n')}\n`);
      return file;
    },
  };
}

/** Keys `app` (with a version) and `fresh` (none yet), SCIM targets at `url`, on `store`. */
function keysYaml(options: { url?: string; adminUrl?: string; store?: string } = {}): string[] {
  const url = options.url ?? scim.url;
  const adminUrl = options.adminUrl ?? scim.adminUrl;
  const key = (name: string) => [
    `  ${name}:`,
    ...(options.store ? [`    store: ${options.store}`] : []),
    '    rotation: { interval: 30d, grace: 1h }',
    '    target:',
    '      type: scim',
    `      url: ${url}`,
    '      propagationTimeout: 2s',
    '      requestTimeout: 2s',
    `      applier: { type: http, url: ${adminUrl}, authRef: "env:SCIM_ADMIN_TOKEN", timeout: 2s }`,
  ];
  return ['keys:', ...key('app'), ...key('fresh')];
}

const vaultStores = (address: string) => ['stores:', `  bao: { type: vault, address: "${address}", mount: exitkv, prefix: p${randomBytes(3).toString('hex')}, timeout: 2s }`];
const freshToken = () => `pk_${randomBytes(32).toString('base64url')}`;

/** Every command that reads a config, with the arguments that make it work on key `app` (or `fresh`). */
const COMMANDS: Record<string, { args: string[]; input?: () => string }> = {
  status: { args: ['status'] },
  history: { args: ['history', 'app'] },
  get: { args: ['get', 'app'] },
  test: { args: ['test', 'app'] },
  rotate: { args: ['rotate', 'app'] },
  'rotate --due': { args: ['rotate', '--due'] },
  revoke: { args: ['revoke', 'app', '--current', '--yes'] },
  drill: { args: ['drill', 'compromise', 'app', '--yes'] },
  add: { args: ['add', 'fresh'] },
  import: { args: ['import', 'fresh'], input: () => `${freshToken()}\n` },
  'audit verify': { args: ['audit', 'verify'] },
  migrate: { args: ['migrate', 'app', '--to', 'other', '--yes'] },
};
const STANDALONE: Record<string, string[]> = { init: ['init'], generate: ['generate'], 'check-token': ['check-token'] };

async function expectClass(w: World, config: string, command: string, errorClass: ErrorClass, env: Record<string, string> = {}): Promise<void> {
  const spec = COMMANDS[command]!;
  const run = await w.cli.run(spec.args, { config, env, ...(spec.input ? { input: spec.input() } : {}) });
  seen.push({ command, errorClass, code: run.code });
  expect(run.code, `${command} meeting ${errorClass}\n${describeRun(run)}`).toBe(CLASS_CODE[errorClass].code);
  expect(run.stderr, describeRun(run)).not.toMatch(/internal error|\n\s+at /);
}

describe('the exit-code table', () => {
  it('docs/cli.md lists exactly the codes of src/core/errors.ts, and --help the same', async () => {
    const table = docsTable();
    expect([...table.keys()].sort()).toEqual(Object.values(ExitCode).sort());
    const help = await runProvkey(['--help']);
    const helpCodes = [...help.stdout.split('Exit codes:')[1]!.matchAll(/^ {2}(\d) {2}/gm)].map((m) => Number(m[1]));
    expect(helpCodes.sort()).toEqual(Object.values(ExitCode).sort());
    for (const { code, docsWord } of Object.values(CLASS_CODE)) expect(table.get(code), `docs row for ${code}`).toMatch(docsWord);
  });

  it('docs/file-store.md gives a wrong key or passphrase the code the table gives a refused credential', () => {
    const text = readFileSync(path.join(repoRoot, 'docs/file-store.md'), 'utf8');
    expect(text).toMatch(/wrong key file or passphrase`, exit 6\b/);
  });
});

describe('usage: an unknown flag, for every command', () => {
  it.each([...Object.keys(COMMANDS), ...Object.keys(STANDALONE)])('%s --no-such-flag', async (command) => {
    const w = world();
    const args = COMMANDS[command]?.args ?? STANDALONE[command]!;
    const run = await w.cli.run([...args, '--no-such-flag'], { config: w.write('provkey.yaml', keysYaml()) });
    seen.push({ command, errorClass: 'usage', code: run.code });
    expect(run.code, describeRun(run)).toBe(ExitCode.usage);
    w.cli.scanner.assertClean();
  });
});

describe('config: an invalid config, for every command that reads one', () => {
  it.each(Object.keys(COMMANDS))('%s', async (command) => {
    const w = world();
    const config = w.write('provkey.yaml', [...keysYaml(), '    colour: blue']);
    await expectClass(w, config, command, 'config');
    w.cli.scanner.assertClean();
  });
});

describe('the embedded store', () => {
  let w: World;
  let config: string;
  beforeAll(async () => {
    w = world({ PK_PASSPHRASE: passphrase });
    config = w.write('provkey.yaml', ['stores:', '  default: { type: file, passphraseEnv: PK_PASSPHRASE }', '  other: { type: file, path: other.enc, keyFile: other.key }', ...keysYaml()]);
    const added = await w.cli.run(['add', 'app'], { config });
    expect(added.code, describeRun(added)).toBe(0);
  });
  afterAll(() => w.cli.scanner.assertClean());

  it.each(['status', 'history', 'get', 'test', 'rotate', 'rotate --due', 'revoke', 'drill', 'add', 'import', 'audit verify', 'migrate'])('denied: %s with a wrong passphrase', async (command) => {
    await expectClass(w, config, command, 'denied', { PK_PASSPHRASE: 'not the passphrase at all' });
  });

  /** A world of its own with `app` added: a row that reaches the target may change the key. */
  async function addedWorld(): Promise<{ w: World; config: string }> {
    const own = world({ PK_PASSPHRASE: passphrase });
    const file = own.write('provkey.yaml', ['stores:', '  default: { type: file, passphraseEnv: PK_PASSPHRASE }', ...keysYaml()]);
    const added = await own.cli.run(['add', 'app'], { config: file });
    expect(added.code, describeRun(added)).toBe(0);
    return { w: own, config: file };
  }

  // An app that cannot be reached is exit 5 for every command that talks to it: never a lockout, never 1.
  it.each(['test', 'add', 'import', 'rotate', 'revoke', 'drill'])('unavailable: %s with the SCIM app on a closed port', async (command) => {
    const { w: own } = await addedWorld();
    const down = own.write('down.yaml', ['stores:', '  default: { type: file, passphraseEnv: PK_PASSPHRASE }', ...keysYaml({ url: `http://127.0.0.1:${closedPort}/scim/v2`, adminUrl: `http://127.0.0.1:${closedPort}/admin` })]);
    await expectClass(own, down, command, 'unavailable');
    own.cli.scanner.assertClean();
  });

  it.each(['rotate', 'add'])('denied: %s when the token endpoint refuses the admin token', async (command) => {
    const { w: own, config: file } = await addedWorld();
    await expectClass(own, file, command, 'denied', { SCIM_ADMIN_TOKEN: `wrong-${randomBytes(12).toString('hex')}` });
    own.cli.scanner.assertClean();
  });

  it.each(['rotate', 'add', 'import', 'revoke', 'drill'])('needs-human: %s with a damaged last audit line', async (command) => {
    const log = path.join(w.dir, '.provkey', 'audit.jsonl');
    const original = readFileSync(log, 'utf8');
    appendFileSync(log, '{"seq":99,"at":"20');
    try {
      await expectClass(w, config, command, 'needs-human');
    } finally {
      writeFileSync(log, original);
    }
  });

  it('needs-human: audit verify with an edited line', async () => {
    const log = path.join(w.dir, '.provkey', 'audit.jsonl');
    const original = readFileSync(log, 'utf8');
    writeFileSync(log, original.replace('"key.added"', '"key.removed"'));
    try {
      await expectClass(w, config, 'audit verify', 'needs-human');
    } finally {
      writeFileSync(log, original);
    }
  });
});

describe('the vault store (OpenBao)', () => {
  let w: World;
  let config: string;
  const STORE_COMMANDS = ['status', 'history', 'get', 'test', 'rotate', 'rotate --due', 'revoke', 'drill', 'add', 'import', 'migrate'];
  beforeAll(async () => {
    w = world();
    config = w.write('provkey.yaml', [...vaultStores(bao.addr), '  other: { type: file }', ...keysYaml({ store: 'bao' })]);
    const added = await w.cli.run(['add', 'app'], { config });
    expect(added.code, describeRun(added)).toBe(0);
  });
  afterAll(() => w.cli.scanner.assertClean());

  it.each(STORE_COMMANDS)('unavailable: %s with Vault on a closed port', async (command) => {
    const down = w.write('down.yaml', [...vaultStores(`http://127.0.0.1:${closedPort}`), '  other: { type: file }', ...keysYaml({ store: 'bao' })]);
    await expectClass(w, down, command, 'unavailable');
  });

  it.each(STORE_COMMANDS)('denied: %s with a wrong Vault token', async (command) => {
    await expectClass(w, config, command, 'denied', { VAULT_TOKEN: `hvs.wrong-${randomBytes(12).toString('hex')}` });
  });

  describe('sealed', () => {
    beforeAll(() => bao.seal());
    afterAll(() => bao.unseal());
    it.each(STORE_COMMANDS)('sealed: %s with OpenBao sealed', async (command) => {
      await expectClass(w, config, command, 'sealed');
    });
  });
});

describe('rejected: an app that answers and refuses the token', () => {
  let w: World;
  let elsewhere: string;
  let other: ScimServer;
  beforeAll(async () => {
    w = world();
    const added = await w.cli.run(['add', 'app'], { config: w.write('provkey.yaml', keysYaml()) });
    expect(added.code, describeRun(added)).toBe(0);
    // A second, real SCIM app that never heard of the key's token: it answers, and refuses it.
    other = await startScimServer({ adminToken });
    elsewhere = w.write('elsewhere.yaml', keysYaml({ url: other.url, adminUrl: other.adminUrl }));
  });
  afterAll(async () => {
    await other?.stop();
    w.cli.scanner.assertClean();
  });

  it.each(['test', 'import'])('rejected: %s', async (command) => {
    await expectClass(w, elsewhere, command, 'rejected');
  });
});

describe('coverage of the matrix', () => {
  it('every class was met, and every code it gave is in the docs table', () => {
    const table = docsTable();
    const classes = new Set(seen.map((s) => s.errorClass));
    expect([...classes].sort()).toEqual(Object.keys(CLASS_CODE).sort());
    for (const s of seen) expect(table.has(s.code ?? -1), `${s.command} (${s.errorClass}) gave ${String(s.code)}`).toBe(true);
    const commands = new Set(seen.map((s) => s.command));
    for (const command of [...Object.keys(COMMANDS), ...Object.keys(STANDALONE)]) expect(commands.has(command), command).toBe(true);
  });
});
