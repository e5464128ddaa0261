import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { legacyHash } from '../../src/audit/chain.js';
import { verifyAuditLog, type AuditVerification } from '../../src/audit/verify.js';
import { parseConfigText } from '../../src/config/located.js';
import { ExitCode, NeedsHumanError } from '../../src/core/errors.js';
import { fingerprint } from '../../src/core/fingerprint.js';
import { Session } from '../../src/engine/session.js';

/**
 * Item 7 of issue 7: replay and audit integrity. Every test runs the production wiring (a
 * Session: the default file store with the audit log as its journal, the log keyed from the
 * store's key) on real files, then plays the attacker on those files.
 */

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/legacy-store');
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function workspace(configExtra = ''): { dir: string; store: string; log: string; key: string; config: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'provkey-integrity-'));
  dirs.push(dir);
  const config = path.join(dir, 'provkey.yaml');
  writeFileSync(config, `version: 1\n${configExtra}`, { mode: 0o600 });
  return { dir, config, store: path.join(dir, '.provkey/store.enc'), log: path.join(dir, '.provkey/audit.jsonl'), key: path.join(dir, '.provkey/store.key') };
}

async function withSession<T>(config: string, fn: (session: Session) => Promise<T>): Promise<T> {
  const session = new Session({ config: parseConfigText(readFileSync(config, 'utf8'), config) });
  try {
    return await fn(session);
  } finally {
    await session.close();
  }
}

const at = '2026-11-01T10:00:00.000Z';
const meta = (secret: string, label: 'current' | 'pending' = 'current') => ({ label, fingerprint: fingerprint(secret), createdAt: at, labelledAt: at, origin: 'generated' as const });

/** What the engine does for one change: audit first, then the store write. */
async function addKey(session: Session, key: string, secret: string): Promise<void> {
  await session.emit({ type: 'audit', event: 'key.added', key, outcome: 'ok', fingerprint: fingerprint(secret) });
  await (await session.storeNamed('default')).addVersion(key, undefined, secret, meta(secret));
}

async function rotate(session: Session, key: string, secret: string): Promise<void> {
  const store = await session.storeNamed('default');
  const before = (await store.read(key))!;
  await session.emit({ type: 'audit', event: 'rotate.finished', key, outcome: 'ok', fingerprint: fingerprint(secret) });
  const added = await store.addVersion(key, before.revision, secret, meta(secret, 'pending'));
  const versions = added.record.versions.map((v) => ({ ...v, label: v.id === added.versionId ? ('current' as const) : ('revoked' as const) }));
  await store.update(key, added.record.revision, { versions, state: {} });
}

async function verify(config: string): Promise<AuditVerification> {
  return withSession(config, async (session) => {
    const key = await session.auditChainKey();
    const store = await session.storeNamed('default');
    return verifyAuditLog(session.config.auditPath, {
      ...(key ? { key } : { keyUnavailable: 'no key in this test' }),
      stores: [await store.generationState!()],
      ...(session.config.auditAnchor ? { anchor: session.config.auditAnchor } : {}),
    });
  });
}

async function readRefused(config: string, pattern: RegExp): Promise<void> {
  const error = await withSession(config, async (session) => (await session.storeNamed('default')).read('app')).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'the store must be refused').toBeInstanceOf(NeedsHumanError);
  expect((error as NeedsHumanError).exitCode).toBe(ExitCode.needsHuman);
  expect((error as Error).message).toMatch(pattern);
}

const lines = (log: string) => readFileSync(log, 'utf8').trimEnd().split('\n');
const writeLines = (log: string, all: string[]) => writeFileSync(log, `${all.join('\n')}\n`);

describe('replay: the store generation is checked against the log', () => {
  it('a put-back older store.enc is refused on open (exit 3) and by audit verify: a value revoked two rotations ago does not come back', async () => {
    const w = workspace();
    await withSession(w.config, (s) => addKey(s, 'app', 'value-one-0123456789'));
    const old = readFileSync(w.store);
    await withSession(w.config, async (s) => {
      await rotate(s, 'app', 'value-two-0123456789');
      await rotate(s, 'app', 'value-three-0123456789');
    });
    writeFileSync(w.store, old);
    await readRefused(w.config, /older copy of the store was put back \(rollback\)/);
    const result = await verify(w.config);
    expect(result.ok).toBe(false);
    expect(result.storeProblems[0]?.problem).toMatch(/rollback/);
  });

  it('a cut last line is found: the store is ahead of the log (on open and by verify)', async () => {
    const w = workspace();
    await withSession(w.config, async (s) => {
      await addKey(s, 'app', 'value-one-0123456789');
      await rotate(s, 'app', 'value-two-0123456789');
    });
    expect((await verify(w.config)).checked).toBe(true);
    writeLines(w.log, lines(w.log).slice(0, -1));
    await readRefused(w.config, /lines are missing from the end of the log/);
    expect((await verify(w.config)).storeProblems[0]?.problem).toMatch(/lines are missing from the end of the log/);
  });

  it('a deleted log is found while the store exists, and a deleted store while the log exists', async () => {
    const w = workspace();
    await withSession(w.config, async (s) => {
      await addKey(s, 'app', 'value-one-0123456789');
      await rotate(s, 'app', 'value-two-0123456789');
    });
    const log = readFileSync(w.log);
    rmSync(w.log);
    await readRefused(w.config, /has no record of its writes: the log was deleted/);
    writeFileSync(w.log, log);
    rmSync(w.store);
    await readRefused(w.config, /is missing, but the audit log .* records its writes/);
    const result = await verify(w.config);
    expect(result.ok).toBe(false);
    expect(result.storeProblems[0]?.problem).toMatch(/store was deleted or moved/);
  });

  it('a write announced but never committed (a crash between the two) is not a rollback', async () => {
    const w = workspace();
    await withSession(w.config, (s) => addKey(s, 'app', 'value-one-0123456789'));
    await withSession(w.config, (s) => s.audit.announce('default', 2, w.store));
    const record = await withSession(w.config, async (s) => (await s.storeNamed('default')).read('app'));
    expect(record?.versions).toHaveLength(1);
    expect(await verify(w.config)).toMatchObject({ ok: true, uncommittedWrites: [{ store: 'default', generation: 2 }] });
    await withSession(w.config, (s) => rotate(s, 'app', 'value-two-0123456789'));
    expect((await verify(w.config)).checked).toBe(true);
  });
});

describe('the keyed chain', () => {
  it('an edited or deleted key.revealed line fails even with every hash recomputed', async () => {
    const w = workspace();
    await withSession(w.config, async (s) => {
      await addKey(s, 'app', 'value-one-0123456789');
      await s.emit({ type: 'audit', event: 'key.revealed', key: 'app', outcome: 'ok' });
      await rotate(s, 'app', 'value-two-0123456789');
    });
    const original = lines(w.log);
    const revealed = original.findIndex((l) => l.includes('"key.revealed"'));
    // The attacker's best without the key: drop the line, renumber, and recompute a SHA-256 chain.
    const forged = rechainUnkeyed([...original.slice(0, revealed), ...original.slice(revealed + 1)]);
    writeLines(w.log, forged);
    const result = await verify(w.config);
    expect(result.ok).toBe(false);
    expect(result.line).toBe(1);
    expect(result.problem).toMatch(/forged/);

    // Editing the line in place (its MAC kept): the MAC no longer matches.
    writeLines(w.log, original.map((l, i) => (i === revealed ? l.replace('"key.revealed"', '"key.listed"') : l)));
    const edited = await verify(w.config);
    expect(edited.line).toBe(revealed + 1);
    expect(edited.problem).toMatch(/does not match its MAC/);
  });

  it('a forged unkeyed line after keyed ones is refused before anything is appended', async () => {
    const w = workspace();
    await withSession(w.config, (s) => addKey(s, 'app', 'value-one-0123456789'));
    const all = lines(w.log);
    const last = JSON.parse(all.at(-1)!);
    const body = { seq: last.seq + 1, at, actor: last.actor, event: 'key.revoked', key: 'app', prev: last.mac };
    writeLines(w.log, [...all, JSON.stringify({ ...body, hash: legacyHash(body) })]);
    const refused = await withSession(w.config, (s) => s.emit({ type: 'audit', event: 'key.tested', key: 'app' })).then(() => undefined, (e: unknown) => e);
    expect((refused as Error).message).toMatch(/unkeyed although keyed lines come before it/);
    expect((await verify(w.config)).problem).toMatch(/unkeyed line after keyed lines/);
  });

  it('another store key (another store\'s log) is told apart from an edit', async () => {
    const a = workspace();
    const b = workspace();
    await withSession(a.config, (s) => addKey(s, 'app', 'value-one-0123456789'));
    await withSession(b.config, (s) => addKey(s, 'app', 'value-one-0123456789'));
    copyFileSync(a.log, b.log);
    const result = await verify(b.config);
    expect(result.problem).toMatch(/written with a different key/);
  });

  it('says precisely what it did not check: a missing log, keyed lines without the key', async () => {
    const w = workspace();
    const missing = await verifyAuditLog(w.log);
    expect(missing).toMatchObject({ exists: false, ok: true, checked: false, notChecked: ['the log does not exist'] });
    await withSession(w.config, (s) => addKey(s, 'app', 'value-one-0123456789'));
    const noKey = await verifyAuditLog(w.log, { keyUnavailable: 'the default store is not an embedded file store' });
    expect(noKey.checked).toBe(false);
    expect(noKey.notChecked[0]).toMatch(/2 keyed line\(s\) not authenticated: the default store is not an embedded file store/);
  });
});

describe('the anchor: a second place holding the log head', () => {
  it('finds a cut key.revealed line (no store write after it) and both files put back together', async () => {
    const anchorDir = mkdtempSync(path.join(tmpdir(), 'provkey-anchor-'));
    dirs.push(anchorDir);
    const w = workspace(`audit:\n  anchor: ${path.join(anchorDir, 'head.json')}\n`);
    await withSession(w.config, (s) => addKey(s, 'app', 'value-one-0123456789'));
    const [oldStore, oldLog] = [readFileSync(w.store), readFileSync(w.log)];
    await withSession(w.config, (s) => s.emit({ type: 'audit', event: 'key.revealed', key: 'app', outcome: 'ok' }));
    const full = lines(w.log);
    writeLines(w.log, full.slice(0, -1));
    // The generation alone cannot see this cut (the store was not written after the line); the
    // anchor does: when the store is opened, before anything is appended, and in verify.
    await readRefused(w.config, /its anchor .* records line \d+: lines were cut/);
    const refused = await withSession(w.config, (s) => s.ensureAuditWritable()).then(() => undefined, (e: unknown) => e);
    expect((refused as NeedsHumanError).exitCode).toBe(ExitCode.needsHuman);
    expect((refused as Error).message).toMatch(/its anchor .* records line \d+: lines were cut/);
    expect((await verify(w.config)).anchor?.problem).toMatch(/lines were cut from its end/);

    writeLines(w.log, full);
    await withSession(w.config, (s) => rotate(s, 'app', 'value-two-0123456789'));
    writeFileSync(w.store, oldStore);
    writeFileSync(w.log, oldLog);
    const result = await verify(w.config);
    expect(result.ok).toBe(false);
    expect(result.anchor?.problem).toMatch(/lines were cut from its end, or an older log was put back/);
  });
});

describe('upgrade of a store and log written by the release before keyed logs', () => {
  function legacyWorkspace() {
    const w = workspace();
    mkdirSync(path.dirname(w.store), { recursive: true, mode: 0o700 });
    for (const [from, to] of [['store.enc', w.store], ['store.key', w.key], ['audit.jsonl', w.log]] as const) copyFileSync(path.join(fixtures, from), to);
    chmodSync(w.key, 0o600);
    return w;
  }

  it('opens them as they are, then keys the log on the first write; the legacy lines stay verifiable, sealed by the upgrade', async () => {
    const w = legacyWorkspace();
    const before = await verify(w.config);
    expect(before).toMatchObject({ ok: true, checked: true, entries: 3, legacyEntries: 3, keyedEntries: 0 });
    const record = await withSession(w.config, async (s) => (await s.storeNamed('default')).read('app'));
    expect(record?.versions.map((v) => v.label)).toEqual(['previous', 'current']);
    expect(readFileSync(w.log, 'utf8').split('\n').filter(Boolean)).toHaveLength(3);

    await withSession(w.config, (s) => rotate(s, 'app', 'value-upgraded-0123456789'));
    const all = lines(w.log).map((l) => JSON.parse(l));
    expect(all[3]).toMatchObject({ seq: 4, event: 'audit.upgraded', detail: { legacyLines: 3 }, prev: all[2].hash });
    expect(all.slice(3).every((l) => typeof l.mac === 'string')).toBe(true);
    const after = await verify(w.config);
    expect(after).toMatchObject({ ok: true, checked: true, legacyEntries: 3 });
    expect(after.keyedEntries).toBe(all.length - 3);

    // Rewriting the legacy part (its hashes recomputed) no longer passes: the upgrade line sealed it.
    const text = lines(w.log);
    const legacy = rechainUnkeyed(text.slice(0, 3).map((l) => l.replace('"key.revealed"', '"key.listed"')));
    writeLines(w.log, [...legacy, ...text.slice(3)]);
    const tampered = await verify(w.config);
    expect(tampered).toMatchObject({ ok: false, line: 4, problem: 'does not chain to the line before it' });
  });

  it('the legacy store put back after the upgrade is a rollback', async () => {
    const w = legacyWorkspace();
    await withSession(w.config, async (s) => {
      await rotate(s, 'app', 'value-upgraded-0123456789');
    });
    copyFileSync(path.join(fixtures, 'store.enc'), w.store);
    await readRefused(w.config, /older copy of the store was put back/);
    expect(existsSync(w.store)).toBe(true);
  });
});

/** Renumbers lines and recomputes an unkeyed SHA-256 chain: all an attacker without the key can do. */
function rechainUnkeyed(all: string[]): string[] {
  let prev = '0'.repeat(64);
  return all.map((line, i) => {
    const { hash: _h, mac: _m, kid: _k, ...rest } = JSON.parse(line);
    const body = { ...rest, seq: i + 1, prev };
    const hash = legacyHash(body);
    prev = hash;
    return JSON.stringify({ ...body, hash });
  });
}

describe('no false alarm under concurrency', () => {
  it('readers never see a rollback or a cut log while two other processes write', async () => {
    const w = workspace();
    await withSession(w.config, (s) => addKey(s, 'app', 'value-zero-0123456789'));
    const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist');
    const script = path.join(w.dir, 'writer.mjs');
    writeFileSync(
      script,
      `import { readFileSync } from 'node:fs';
import { parseConfigText } from '${dist}/config/located.js';
import { Session } from '${dist}/engine/session.js';
const file = process.env.CONFIG;
const session = new Session({ config: parseConfigText(readFileSync(file, 'utf8'), file) });
const store = await session.storeNamed('default');
process.stdout.write('ready\\n');
await new Promise((resolve) => process.stdin.once('data', resolve));
for (let i = 0; i < 30; i++) {
  for (;;) {
    const record = await store.read('app');
    try {
      await session.emit({ type: 'audit', event: 'key.tested', key: 'app', detail: { worker: process.env.WORKER, i } });
      await store.update('app', record.revision, { versions: record.versions, state: { lastRotatedAt: process.env.WORKER + i } });
      break;
    } catch (error) {
      if (error.kind !== 'conflict') throw error;
    }
  }
}
await session.close();
`,
    );
    const { spawn } = await import('node:child_process');
    const children: import('node:child_process').ChildProcess[] = [];
    let ready = 0;
    let allReady!: () => void;
    const started = new Promise<void>((resolve) => (allReady = resolve));
    const runs = ['a', 'b'].map(
      (worker) =>
        new Promise<{ code: number | null; stderr: string }>((resolve) => {
          const child = spawn(process.execPath, ['--no-warnings', script], { env: { ...process.env, CONFIG: w.config, WORKER: worker } });
          children.push(child);
          let stderr = '';
          child.stdout!.on('data', () => {
            if (++ready === 2) {
              for (const c of children) c.stdin!.end('go\n');
              allReady();
            }
          });
          child.stderr!.on('data', (d) => (stderr += d));
          child.on('close', (code) => resolve({ code, stderr }));
        }),
    );
    let done = false;
    const finished = Promise.all(runs).then((results) => {
      done = true;
      return results;
    });
    await started;
    let reads = 0;
    await withSession(w.config, async (s) => {
      const store = await s.storeNamed('default');
      while (!done) {
        await store.read('app'); // throws on a false rollback or cut-log verdict
        reads++;
        // A read of the database does no file I/O of its own once open: let the children's events in.
        await new Promise((resolve) => setImmediate(resolve));
      }
    });
    for (const result of await finished) expect(result, result.stderr).toMatchObject({ code: 0 });
    expect(reads).toBeGreaterThan(0);
    const result = await verify(w.config);
    expect(result).toMatchObject({ ok: true, checked: true });
    expect(result.generations.default).toBe(61);
  }, 60_000);
});

describe('a reader racing writers', () => {
  it('a store read just before two writes commit is re-checked under the lock, not reported as a rollback', async () => {
    const w = workspace();
    await withSession(w.config, (s) => addKey(s, 'app', 'value-one-0123456789'));
    const { createFileStore } = await import('../../src/stores/file.js');
    const { AuditLog } = await import('../../src/audit/audit-log.js');
    const storeConfig = { type: 'file' as const, path: '.provkey/store.enc', keyFile: '.provkey/store.key' };
    // Barrier: the reader stops after reading the store and before comparing it with the log.
    let readerPaused!: () => void;
    const paused = new Promise<void>((resolve) => (readerPaused = resolve));
    let resumeReader!: () => void;
    const resume = new Promise<void>((resolve) => (resumeReader = resolve));
    let pauseOnce = true;
    const readerLog: InstanceType<typeof AuditLog> = new AuditLog(w.log, { key: (o) => reader.auditKey!(o) });
    const reader = await createFileStore('default', storeConfig, { configDir: w.dir, env: {}, resolveSecret: async () => '', debug: () => {}, journal: readerLog }, {
      afterLockFreeRead: async () => {
        if (!pauseOnce) return;
        pauseOnce = false;
        readerPaused();
        await resume;
      },
    });
    const reading = reader.read('app');
    await paused;
    // Two writes land while the reader holds generation 1: the log now announces 3.
    await withSession(w.config, async (s) => {
      await rotate(s, 'app', 'value-two-0123456789');
    });
    resumeReader();
    const record = await reading;
    expect(record?.versions.map((v) => v.label)).toEqual(['revoked', 'current']);
  });
});
