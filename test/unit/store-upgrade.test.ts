import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { verifyAuditLog } from '../../src/audit/verify.js';
import { parseConfigText } from '../../src/config/located.js';
import { AdapterError } from '../../src/core/errors.js';
import { fingerprint } from '../../src/core/fingerprint.js';
import { Session } from '../../src/engine/session.js';
import { legacyDocument } from '../../src/stores/file/upgrade.js';
import { TS_SOURCE_HOOK } from '../harness/ts-source-child.ts';

/**
 * The upgrade of a store written by the release before the embedded database (0.1, commit
 * 5da6091): test/fixtures/legacy-store/release-0.1 was written by that release's own code
 * (make-release-fixture.mjs): two stores, one with a key file and one with a passphrase, and
 * the keyed audit log announcing their generations (7 each).
 */

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const fixture = path.join(repoRoot, 'test/fixtures/legacy-store/release-0.1');
const PASSPHRASE = 'fixture passphrase, not a secret';
const config = 'version: 1\nstores:\n  locked:\n    type: file\n    path: .provkey/locked.enc\n    passphraseEnv: FIXTURE_PASSPHRASE\n';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function workspace() {
  const dir = mkdtempSync(path.join(tmpdir(), 'provkey-upgrade-'));
  dirs.push(dir);
  const state = path.join(dir, '.provkey');
  mkdirSync(state, { mode: 0o700 });
  for (const file of ['store.enc', 'store.key', 'locked.enc', 'audit.jsonl']) copyFileSync(path.join(fixture, file), path.join(state, file));
  chmodSync(path.join(state, 'store.key'), 0o600);
  const configFile = path.join(dir, 'provkey.yaml');
  writeFileSync(configFile, config);
  return { dir, state, configFile, store: path.join(state, 'store.enc'), locked: path.join(state, 'locked.enc'), log: path.join(state, 'audit.jsonl') };
}

async function withSession<T>(configFile: string, fn: (session: Session) => Promise<T>): Promise<T> {
  const session = new Session({ config: parseConfigText(readFileSync(configFile, 'utf8'), configFile), env: { FIXTURE_PASSPHRASE: PASSPHRASE } });
  try {
    return await fn(session);
  } finally {
    await session.close();
  }
}

const isDatabase = (file: string) => readFileSync(file).subarray(0, 16).toString('latin1') === 'SQLite format 3\0';
const logLines = (log: string) => readFileSync(log, 'utf8').trimEnd().split('\n').length;

/** What the 0.1 file holds, decrypted with the 0.1 reader kept for the upgrade. */
function legacyContents(file: string, key: Buffer) {
  return legacyDocument(readFileSync(file, 'utf8'), file, key, 'test').document;
}

describe('upgrade of a 0.1 store.enc on first open', () => {
  it('keeps every key, version, label, state, revision and value, keeps the old file as .bak, and writes nothing to the log', async () => {
    const w = workspace();
    const linesBefore = logLines(w.log);
    const seen = await withSession(w.configFile, async (session) => {
      const out: Record<string, unknown> = {};
      for (const name of ['default', 'locked']) {
        const store = await session.storeNamed(name);
        const keys = await store.listKeys();
        const records = await Promise.all(keys.map((k) => store.read(k)));
        const values: Record<string, string | null> = {};
        for (const record of records) {
          for (const v of record!.versions) values[`${record!.key}/${v.id}`] = await store.readSecret(record!.key, v.id).catch((e: AdapterError) => e.kind);
        }
        out[name] = { keys, records, values, generation: (await store.generationState!()).generation };
      }
      return out as Record<'default' | 'locked', { keys: string[]; records: { key: string; revision: string; versions: { id: string; label: string; fingerprint: string }[]; state: unknown }[]; values: Record<string, string>; generation: number }>;
    });
    for (const [name, file] of [['default', w.store], ['locked', w.locked]] as const) {
      expect(isDatabase(file), `${name} is a database now`).toBe(true);
      expect(readFileSync(`${file}.bak`), 'the 0.1 file is kept, byte for byte').toEqual(readFileSync(path.join(fixture, path.basename(file))));
      const got = seen[name];
      expect(got.keys).toEqual(['app', 'ldap-bind']);
      expect(got.generation, 'the generation carries over: same contents, nothing to announce').toBe(7);
      for (const key of ['app', 'ldap-bind']) {
        const v1 = `release-fixture-${name}-${key}-v1-0123456789`;
        const v2 = `release-fixture-${name}-${key}-v2-0123456789`;
        const record = got.records.find((r) => r.key === key)!;
        expect(record.versions.map((v) => [v.id, v.label, v.fingerprint])).toEqual([
          ['1', 'previous', fingerprint(v1)],
          ['2', 'current', fingerprint(v2)],
        ]);
        expect(record.state).toEqual({ lastRotatedAt: '2026-11-01T10:00:00.000Z', lastTest: { ok: true, at: '2026-11-01T10:00:00.000Z' } });
        expect(got.values[`${key}/2`]).toBe(v2);
        // ldap-bind's v1 was disabled by 0.1: it stays erased.
        expect(got.values[`${key}/1`]).toBe(key === 'ldap-bind' ? 'not_found' : v1);
      }
    }
    // Revisions carry over too: a compare-and-set token an old reader holds still means the same state.
    const key = Buffer.from(readFileSync(path.join(fixture, 'store.key'), 'utf8').trim(), 'base64');
    const legacy = legacyContents(path.join(fixture, 'store.enc'), key);
    expect(seen.default.records.map((r) => r.revision)).toEqual(legacy.keys.map((k) => String(k.revision)));
    expect(logLines(w.log), 'an upgrade changes no content: nothing to audit or announce').toBe(linesBefore);

    // The log still verifies against the upgraded stores, and the next write announces generation 8.
    await withSession(w.configFile, async (session) => {
      const store = await session.storeNamed('default');
      const record = (await store.read('app'))!;
      await session.emit({ type: 'audit', event: 'key.tested', key: 'app', outcome: 'ok' });
      await store.update('app', record.revision, { versions: record.versions, state: { ...record.state, lastTest: { ok: true, at: new Date().toISOString() } } });
      const verified = await verifyAuditLog(session.config.auditPath, {
        key: (await session.auditChainKey())!,
        stores: [await store.generationState!(), await (await session.storeNamed('locked')).generationState!()],
      });
      expect(verified).toMatchObject({ ok: true, checked: true, generations: { default: 8, locked: 7 } });
    });
    expect(readdirSync(w.state).sort()).toEqual(['audit.jsonl', 'locked.enc', 'locked.enc.bak', 'store.enc', 'store.enc.bak', 'store.key']);
  });

  it('a wrong passphrase is refused (exit 6) and the 0.1 file is left untouched', async () => {
    const w = workspace();
    const session = new Session({ config: parseConfigText(config, w.configFile), env: { FIXTURE_PASSPHRASE: 'not the passphrase' } });
    try {
      const error = await (await session.storeNamed('locked')).read('app').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AdapterError);
      expect((error as AdapterError).kind).toBe('auth_failed');
      expect((error as AdapterError).exitCode).toBe(6);
    } finally {
      await session.close();
    }
    expect(readFileSync(w.locked)).toEqual(readFileSync(path.join(fixture, 'locked.enc')));
    expect(existsSync(`${w.locked}.bak`)).toBe(false);
  });

  it('two processes opening the 0.1 store at once: one upgrade, both read the same keys', async () => {
    const w = workspace();
    const results = await Promise.all(['a', 'b'].map(() => runChild(w.dir, {})));
    for (const result of results) expect(result, result.stderr).toMatchObject({ code: 0, stdout: 'app,ldap-bind\n' });
    expect(isDatabase(w.store)).toBe(true);
    expect(readFileSync(`${w.store}.bak`)).toEqual(readFileSync(path.join(fixture, 'store.enc')));
  });

  for (const point of ['database-written', 'backup-written'] as const) {
    it(`a crash during the upgrade (killed once the ${point.replace('-', ' ')}) leaves the 0.1 store whole; the next open upgrades it`, async () => {
      const w = workspace();
      const killed = await runChild(w.dir, { KILL_AT: point });
      expect(killed.signal, killed.stderr).toBe('SIGKILL');
      expect(readFileSync(w.store), 'the old store is untouched').toEqual(readFileSync(path.join(fixture, 'store.enc')));
      const after = await runChild(w.dir, {});
      expect(after, after.stderr).toMatchObject({ code: 0, stdout: 'app,ldap-bind\n' });
      expect(isDatabase(w.store)).toBe(true);
      // The killed run's temp database was garbage, and is gone.
      expect(readdirSync(w.state).filter((f) => f.endsWith('.tmp') || f.includes('.tmp-')), 'no temp left').toEqual([]);
    });
  }
});

/** Opens the default store of `dir` in a child process running the source (as the store test does) and lists its keys. */
function runChild(dir: string, env: Record<string, string>): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const script = path.join(dir, 'open-store.mjs');
  writeFileSync(script, childScript);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--no-warnings', script], {
      env: { ...process.env, ...env, STORE_DIR: dir, SRC: pathToFileURL(path.join(repoRoot, 'src/stores/file.ts')).href, AUDIT: pathToFileURL(path.join(repoRoot, 'src/audit/audit-log.ts')).href },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const childScript = `${TS_SOURCE_HOOK}const { createFileStore } = await import(process.env.SRC);
const { AuditLog } = await import(process.env.AUDIT);
const dir = process.env.STORE_DIR;
let store;
const journal = new AuditLog(dir + '/.provkey/audit.jsonl', { key: (o) => store.auditKey(o) });
const context = { configDir: dir, env: {}, resolveSecret: async () => '', debug: () => {}, journal };
store = await createFileStore('default', { type: 'file', path: '.provkey/store.enc', keyFile: '.provkey/store.key' }, context, {
  upgradeAt: async (point) => {
    if (point === process.env.KILL_AT) process.kill(process.pid, 'SIGKILL');
  },
});
console.log((await store.listKeys()).join(','));
await store.close();
`;
