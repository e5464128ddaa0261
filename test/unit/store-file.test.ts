import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { FileStoreConfig } from '../../src/config/schema.js';
import { AdapterError } from '../../src/core/errors.js';
import { fingerprint } from '../../src/core/fingerprint.js';
import type { AdapterContext } from '../../src/stores/context.js';
import { createFileStore, initFileStore, type FileStoreInternals } from '../../src/stores/file.js';
import type { NewVersionMeta, SecretStore } from '../../src/stores/store.js';
import { describeStoreContract } from '../contract/store-contract.js';

/** Lets one test play a file system without hard links (the lock then falls back to O_EXCL). */
const linkSupport = vi.hoisted(() => ({ enabled: true }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  const link: typeof actual.link = (existing, created) =>
    linkSupport.enabled ? actual.link(existing, created) : Promise.reject(Object.assign(new Error('EPERM: operation not permitted, link'), { code: 'EPERM' }));
  return { ...actual, link, default: { ...actual, link } };
});

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const config: FileStoreConfig = { type: 'file', path: 'state/store.enc', keyFile: 'state/store.key' };
const passphraseConfig: FileStoreConfig = { ...config, passphraseEnv: 'TEST_PROVKEY_PASSPHRASE' };

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'provkey-file-store-'));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

function context(dir: string, env: NodeJS.ProcessEnv = {}): AdapterContext {
  return {
    configDir: dir,
    env,
    resolveSecret: async () => {
      throw new Error('not used by the file store');
    },
    debug: () => {},
  };
}

function open(dir: string, env: NodeJS.ProcessEnv = {}, cfg = config, internals: FileStoreInternals = {}): Promise<SecretStore> {
  return createFileStore('default', cfg, context(dir, env), internals);
}

const storePath = (dir: string) => path.join(dir, config.path);
const keyPath = (dir: string) => path.join(dir, config.keyFile);
const lockPath = (dir: string) => `${storePath(dir)}.lock`;

function meta(secret: string): NewVersionMeta {
  const at = new Date().toISOString();
  return { label: 'current', fingerprint: fingerprint(secret), createdAt: at, labelledAt: at, origin: 'generated' };
}

async function kindOf(promise: Promise<unknown>): Promise<{ kind: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (!(error instanceof AdapterError)) throw error;
    return { kind: error.kind, message: error.message };
  }
  throw new Error('expected the promise to reject');
}

/** A store with one key and one known secret, written with a key file. */
async function seeded(dir: string, env: NodeJS.ProcessEnv = {}, cfg = config) {
  const store = await open(dir, env, cfg);
  const secret = `pk_${randomBytes(24).toString('base64url')}`;
  const key = 'entra-scim-prod';
  const { versionId } = await store.addVersion(key, undefined, secret, meta(secret), { lastRotatedAt: '2025-01-01T00:00:00.000Z' });
  return { store, secret, key, versionId };
}

describeStoreContract('file store, key file', async () => {
  const dir = await tempDir();
  return { store: await open(dir) };
});

describeStoreContract('file store, passphrase', async () => {
  const dir = await tempDir();
  return { store: await open(dir, { TEST_PROVKEY_PASSPHRASE: 'correct horse battery staple' }, passphraseConfig) };
});

describe('file store: at rest', () => {
  it('reads a missing store as empty and creates nothing until the first write', async () => {
    const dir = await tempDir();
    const store = await open(dir);
    expect(await store.listKeys()).toEqual([]);
    expect(await store.read('anything')).toBeUndefined();
    expect(await readdir(dir)).toEqual([]);
  });

  it('creates the key file and store file private (0600) on the first write', async () => {
    const dir = await tempDir();
    await seeded(dir);
    expect((await stat(keyPath(dir))).mode & 0o777).toBe(0o600);
    expect((await stat(storePath(dir))).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(storePath(dir)))).mode & 0o777).toBe(0o700);
    // No temp or lock files are left behind.
    expect((await readdir(path.dirname(storePath(dir)))).sort()).toEqual(['store.enc', 'store.key']);
  });

  it('keeps no secret, fingerprint or key name in clear in the file', async () => {
    const dir = await tempDir();
    const { secret, key } = await seeded(dir);
    const bytes = await readFile(storePath(dir));
    expect(bytes.includes(secret)).toBe(false);
    expect(bytes.includes(Buffer.from(secret).toString('base64'))).toBe(false);
    expect(bytes.includes(fingerprint(secret))).toBe(false);
    expect(bytes.includes(key)).toBe(false);
    const envelope = JSON.parse(bytes.toString('utf8'));
    expect(Object.keys(envelope).sort()).toEqual(['data', 'format', 'iv', 'kdf', 'keyCheck', 'tag', 'version']);
    expect(envelope).toMatchObject({ format: 'provkey-file-store', version: 1, kdf: { type: 'keyfile' } });
  });

  it('uses a fresh IV for every write', async () => {
    const dir = await tempDir();
    const { store, key } = await seeded(dir);
    const first = JSON.parse(await readFile(storePath(dir), 'utf8'));
    const record = (await store.read(key))!;
    await store.update(key, record.revision, { versions: record.versions, state: record.state });
    const second = JSON.parse(await readFile(storePath(dir), 'utf8'));
    expect(second.iv).not.toBe(first.iv);
  });

  it('survives a new process: a second store instance reads what the first wrote', async () => {
    const dir = await tempDir();
    const { secret, key, versionId } = await seeded(dir);
    const again = await open(dir);
    expect(await again.readSecret(key, versionId)).toBe(secret);
  });
});

describe('file store: tampering and wrong keys', () => {
  /** Flips one bit of a base64 field's decoded bytes and writes the envelope back. */
  async function flipField(dir: string, field: 'data' | 'tag' | 'iv' | 'keyCheck') {
    const envelope = JSON.parse(await readFile(storePath(dir), 'utf8'));
    const bytes = Buffer.from(envelope[field], 'base64');
    bytes[bytes.length >> 1]! ^= 0x01;
    envelope[field] = bytes.toString('base64');
    await writeFile(storePath(dir), JSON.stringify(envelope));
  }

  for (const field of ['data', 'tag', 'iv', 'keyCheck'] as const) {
    it(`reports a flipped bit in ${field} as tampered`, async () => {
      const dir = await tempDir();
      const { store, key, secret, versionId } = await seeded(dir);
      await flipField(dir, field);
      const error = await kindOf(store.readSecret(key, versionId));
      expect(error.kind).toBe('tampered');
      expect(error.message).toBe(`[file] store file ${storePath(dir)} failed authentication: it was modified or truncated`);
      expect(error.message).not.toContain(secret);
      // A write must not paper over the damage either.
      expect((await kindOf(store.addVersion('other', undefined, 'x-secret', meta('x-secret')))).kind).toBe('tampered');
    });
  }

  it('reports an edited header (kdf, format, version) as tampered: the header is authenticated data', async () => {
    const dir = await tempDir();
    const { store } = await seeded(dir);
    const original = await readFile(storePath(dir), 'utf8');
    const edits: Array<(e: Record<string, unknown>) => void> = [
      (e) => (e.format = 'provkey-file-storf'),
      (e) => (e.version = 0),
      (e) => (e.kdf = { type: 'keyfilf' }),
      (e) => (e.kdf = { type: 'keyfile', extra: 1 }),
      (e) => delete e.tag,
    ];
    for (const edit of edits) {
      const envelope = JSON.parse(original);
      edit(envelope);
      await writeFile(storePath(dir), JSON.stringify(envelope));
      expect((await kindOf(store.listKeys())).kind).toBe('tampered');
    }
  });

  it('reports every single flipped byte anywhere in the file as tampered', async () => {
    const dir = await tempDir();
    const { store } = await seeded(dir);
    const original = await readFile(storePath(dir));
    const kinds = new Map<string, number>();
    for (let i = 0; i < original.length; i++) {
      const damaged = Buffer.from(original);
      damaged[i]! ^= 0x01;
      await writeFile(storePath(dir), damaged);
      const { kind } = await kindOf(store.listKeys());
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
    expect(Object.fromEntries(kinds)).toEqual({ tampered: original.length });
  });

  it('reports a truncated or emptied file as tampered', async () => {
    const dir = await tempDir();
    const { store } = await seeded(dir);
    const original = await readFile(storePath(dir));
    for (const length of [0, 1, 40, original.length >> 1, original.length - 3, original.length - 2]) {
      await writeFile(storePath(dir), original.subarray(0, length));
      expect((await kindOf(store.listKeys())).kind, `truncated to ${length} bytes`).toBe('tampered');
    }
  });

  it('tells a wrong key file apart from tampering (auth_failed)', async () => {
    const dir = await tempDir();
    const { store, key } = await seeded(dir);
    await writeFile(keyPath(dir), randomBytes(32).toString('base64'), { mode: 0o600 });
    const error = await kindOf(store.read(key));
    expect(error.kind).toBe('auth_failed');
    expect(error.message).toContain('wrong key file or passphrase');
    expect(error.message).toContain(keyPath(dir));
  });

  for (const mode of [0o640, 0o604, 0o660]) {
    it(`refuses a key file with mode ${mode.toString(8)}, telling how to fix it`, async () => {
      const dir = await tempDir();
      const { store, key } = await seeded(dir);
      await chmod(keyPath(dir), mode);
      const error = await kindOf(store.read(key));
      expect(error.kind).toBe('invalid');
      expect(error.message).toContain(keyPath(dir));
      expect(error.message).toContain(`chmod 600 ${keyPath(dir)}`);
      expect(error.message.split('\n')).toHaveLength(1);
      await chmod(keyPath(dir), 0o600);
      expect(await store.read(key)).toBeDefined();
    });
  }

  it('refuses a key file that does not hold a 32-byte key', async () => {
    const dir = await tempDir();
    const { store, key } = await seeded(dir);
    await writeFile(keyPath(dir), 'c2hvcnQ=\n', { mode: 0o600 });
    expect((await kindOf(store.read(key))).kind).toBe('invalid');
  });

  it('never creates a new key when the store exists but its key file is gone', async () => {
    const dir = await tempDir();
    const { store, key } = await seeded(dir);
    await rm(keyPath(dir));
    const error = await kindOf(store.addVersion('another', undefined, 'value-1', meta('value-1')));
    expect(error.kind).toBe('invalid');
    expect(error.message).toContain(keyPath(dir));
    expect((await kindOf(store.read(key))).kind).toBe('invalid');
    await expect(stat(keyPath(dir))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('keeps secrets out of every error message', async () => {
    const dir = await tempDir();
    const { store, key, secret, versionId } = await seeded(dir);
    await store.disableVersion(key, versionId);
    const errors = [
      await kindOf(store.readSecret(key, versionId)),
      await kindOf(store.addVersion(key, undefined, secret, meta(secret))),
      await kindOf(store.update(key, '999', { versions: [], state: {} })),
    ];
    expect(errors.map((e) => e.kind)).toEqual(['not_found', 'conflict', 'conflict']);
    expect(errors[0]!.message).toBe(`[file] version ${versionId} of ${key} is disabled`);
    for (const error of errors) expect(error.message).not.toContain(secret);
  });

  it('disabling a version erases its value from the file', async () => {
    const dir = await tempDir();
    const { store, key, versionId } = await seeded(dir);
    const before = (await readFile(storePath(dir))).length;
    await store.disableVersion(key, versionId);
    // The ciphertext shrinks by about the value's length: the value is gone, not just flagged.
    expect((await readFile(storePath(dir))).length).toBeLessThan(before - 30);
  });
});

describe('file store: passphrase', () => {
  const env = { TEST_PROVKEY_PASSPHRASE: 'correct horse battery staple' };

  it('round-trips through scrypt with no key file, and the salt sits in the envelope', async () => {
    const dir = await tempDir();
    const { secret, key, versionId } = await seeded(dir, env, passphraseConfig);
    const again = await open(dir, { ...env }, passphraseConfig);
    expect(await again.readSecret(key, versionId)).toBe(secret);
    await expect(stat(keyPath(dir))).rejects.toMatchObject({ code: 'ENOENT' });
    const envelope = JSON.parse(await readFile(storePath(dir), 'utf8'));
    expect(envelope.kdf).toMatchObject({ type: 'scrypt', N: 32768, r: 8, p: 1 });
    expect(Buffer.from(envelope.kdf.salt, 'base64')).toHaveLength(16);
    expect((await readFile(storePath(dir), 'utf8')).includes(env.TEST_PROVKEY_PASSPHRASE)).toBe(false);
  });

  it('keeps the salt across writes, so the derived key is reused', async () => {
    const dir = await tempDir();
    const { store } = await seeded(dir, env, passphraseConfig);
    const salt = JSON.parse(await readFile(storePath(dir), 'utf8')).kdf.salt;
    await store.addVersion('second', undefined, 'second-value', meta('second-value'));
    expect(JSON.parse(await readFile(storePath(dir), 'utf8')).kdf.salt).toBe(salt);
  });

  it('reports a wrong passphrase as auth_failed, naming the variable but not the passphrase', async () => {
    const dir = await tempDir();
    const { key } = await seeded(dir, env, passphraseConfig);
    const wrong = await open(dir, { TEST_PROVKEY_PASSPHRASE: 'incorrect horse' }, passphraseConfig);
    const error = await kindOf(wrong.read(key));
    expect(error.kind).toBe('auth_failed');
    expect(error.message).toContain('wrong key file or passphrase');
    expect(error.message).toContain('$TEST_PROVKEY_PASSPHRASE');
    expect(error.message).not.toContain('incorrect horse');
  });

  it('asks for the variable when the store exists and the passphrase is not set', async () => {
    const dir = await tempDir();
    await seeded(dir, env, passphraseConfig);
    const error = await kindOf((await open(dir, {}, passphraseConfig)).listKeys());
    expect(error.kind).toBe('invalid');
    expect(error.message).toContain('TEST_PROVKEY_PASSPHRASE');
    // On a fresh machine status still works without it.
    expect(await (await open(await tempDir(), {}, passphraseConfig)).listKeys()).toEqual([]);
  });

  it('says which kind of key a store needs when the config disagrees', async () => {
    const dir = await tempDir();
    await seeded(dir);
    expect((await kindOf((await open(dir, env, passphraseConfig)).listKeys())).message).toContain('encrypted with a key file');
    const other = await tempDir();
    await seeded(other, env, passphraseConfig);
    expect((await kindOf((await open(other)).listKeys())).message).toContain('encrypted with a passphrase');
  });
});

describe('initFileStore', () => {
  it('creates a key file and an empty store, and never overwrites them', async () => {
    const dir = await tempDir();
    const ctx = context(dir);
    expect(await initFileStore(config, ctx, {})).toEqual({ created: true, keyFile: keyPath(dir) });
    expect((await stat(keyPath(dir))).mode & 0o777).toBe(0o600);
    const key = await readFile(keyPath(dir), 'utf8');
    expect(Buffer.from(key.trim(), 'base64')).toHaveLength(32);
    expect(await (await open(dir)).listKeys()).toEqual([]);

    const store = await readFile(storePath(dir));
    expect(await initFileStore(config, ctx, {})).toEqual({ created: false, keyFile: keyPath(dir) });
    expect(await readFile(keyPath(dir), 'utf8')).toBe(key);
    expect(await readFile(storePath(dir))).toEqual(store);
  });

  it('reuses an existing key file rather than replacing it', async () => {
    const dir = await tempDir();
    const { store } = await seeded(dir);
    const key = await readFile(keyPath(dir), 'utf8');
    await rm(storePath(dir));
    expect((await initFileStore(config, context(dir), {})).created).toBe(true);
    expect(await readFile(keyPath(dir), 'utf8')).toBe(key);
    expect(await store.listKeys()).toEqual([]);
  });

  it('checks that the key opens an existing store', async () => {
    const dir = await tempDir();
    await seeded(dir);
    await writeFile(keyPath(dir), randomBytes(32).toString('base64'), { mode: 0o600 });
    expect((await kindOf(initFileStore(config, context(dir), {}))).kind).toBe('auth_failed');
  });

  it('creates a passphrase store without a key file', async () => {
    const dir = await tempDir();
    expect(await initFileStore(passphraseConfig, context(dir), { passphrase: 'init passphrase' })).toEqual({ created: true });
    await expect(stat(keyPath(dir))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await (await open(dir, { TEST_PROVKEY_PASSPHRASE: 'init passphrase' }, passphraseConfig)).listKeys()).toEqual([]);
  });
});

describe('file store: lock', () => {
  async function writeLock(dir: string, holder: { pid: number; host?: string; at?: string }) {
    const at = holder.at ?? new Date().toISOString();
    await writeFile(lockPath(dir), JSON.stringify({ pid: holder.pid, host: holder.host ?? hostname(), at, nonce: 'test' }), { mode: 0o600 });
    return at;
  }

  function deadPid(): number {
    const child = spawnSync(process.execPath, ['-e', '']);
    return child.pid!;
  }

  it('takes over a lock left by a dead process on this host', async () => {
    const dir = await tempDir();
    const { store } = await seeded(dir);
    await writeLock(dir, { pid: deadPid() });
    const started = Date.now();
    await store.addVersion('after-crash', undefined, 'value-2', meta('value-2'));
    expect(Date.now() - started).toBeLessThan(2000);
    await expect(stat(lockPath(dir))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('takes over a lock with its own pid that it does not hold (a container run that restarted as the same pid)', async () => {
    const dir = await tempDir();
    const { store } = await seeded(dir);
    await writeLock(dir, { pid: process.pid });
    await store.addVersion('same-pid', undefined, 'value-6', meta('value-6'));
    await expect(stat(lockPath(dir))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('takes over a lock older than two minutes, even from another host', async () => {
    const dir = await tempDir();
    const { store } = await seeded(dir);
    const old = new Date(Date.now() - 3 * 60_000);
    await writeLock(dir, { pid: 1, host: 'some-other-host', at: old.toISOString() });
    await utimes(lockPath(dir), old, old);
    await store.addVersion('after-stale', undefined, 'value-3', meta('value-3'));
    expect(await store.listKeys()).toContain('after-stale');
  });

  it('waits for a live holder and fails with kind locked naming its pid (PROVKEY_LOCK_TIMEOUT_MS)', async () => {
    const dir = await tempDir();
    await seeded(dir);
    const store = await open(dir, { PROVKEY_LOCK_TIMEOUT_MS: '300' });
    await writeLock(dir, { pid: process.ppid });
    const started = Date.now();
    const error = await kindOf(store.addVersion('blocked', undefined, 'value-4', meta('value-4')));
    const waited = Date.now() - started;
    expect(error.kind).toBe('locked');
    expect(error.message).toContain(`pid ${process.ppid}`);
    expect(error.message).toContain(lockPath(dir));
    expect(waited).toBeGreaterThanOrEqual(290);
    expect(waited).toBeLessThan(3000);
    // The holder's lock is left alone, and nothing was written.
    expect(JSON.parse(await readFile(lockPath(dir), 'utf8')).pid).toBe(process.ppid);
    await rm(lockPath(dir));
    expect(await store.listKeys()).toEqual(['entra-scim-prod']);
  });

  it('proceeds as soon as a live holder releases the lock', async () => {
    const dir = await tempDir();
    const { store } = await seeded(dir);
    await writeLock(dir, { pid: process.ppid });
    setTimeout(() => void rm(lockPath(dir)), 250);
    const started = Date.now();
    await store.addVersion('waited', undefined, 'value-5', meta('value-5'));
    expect(Date.now() - started).toBeGreaterThanOrEqual(240);
    expect(await store.listKeys()).toContain('waited');
  });

  it('still locks on a file system without hard links', async () => {
    const dir = await tempDir();
    await seeded(dir);
    linkSupport.enabled = false;
    try {
      const [a, b] = [await open(dir), await open(dir)];
      const record = (await a.read('entra-scim-prod'))!;
      const results = await Promise.allSettled(
        [a, b].map((store, i) => store.update('entra-scim-prod', record.revision, { versions: record.versions, state: { lastRotatedAt: `${i}` } })),
      );
      expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
      await writeLock(dir, { pid: process.ppid });
      expect((await kindOf((await open(dir, { PROVKEY_LOCK_TIMEOUT_MS: '100' })).deleteKey('entra-scim-prod'))).kind).toBe('locked');
      // The key file of a new store is created without a link too.
      const fresh = await tempDir();
      expect((await initFileStore(config, context(fresh), {})).created).toBe(true);
      expect((await stat(keyPath(fresh))).mode & 0o777).toBe(0o600);
    } finally {
      linkSupport.enabled = true;
    }
  });

  it('does not need the lock to read', async () => {
    const dir = await tempDir();
    const { store, key, secret, versionId } = await seeded(dir, {}, config);
    await writeLock(dir, { pid: process.ppid });
    expect(await store.readSecret(key, versionId)).toBe(secret);
  });

  it('loses no update when two processes each add 50 versions with read-modify-write', async () => {
    const dir = await tempDir();
    const script = path.join(dir, 'increment.mjs');
    await writeFile(script, childScript);
    // Both start against a lock left by a crashed run: exactly one may take it over.
    await mkdir(path.dirname(storePath(dir)), { recursive: true });
    await writeLock(dir, { pid: deadPid() });
    // A start barrier: each child says "ready" once loaded, and both get "go" together, so a
    // slow start of one cannot turn the race into two runs one after the other.
    let ready = 0;
    const children: ChildProcess[] = [];
    const run = (worker: string) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, ['--no-warnings', script], {
          env: { ...process.env, STORE_DIR: dir, WORKER: worker, COUNT: '50', SRC: pathToFileURL(path.join(repoRoot, 'src/stores/file.ts')).href },
        });
        children.push(child);
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => {
          stdout += d;
          if (stdout === 'ready\n' && ++ready === 2) for (const c of children) c.stdin?.end('go\n');
        });
        child.stderr.on('data', (d) => (stderr += d));
        child.on('close', (code) => resolve({ code, stdout: stdout.replace('ready\n', ''), stderr }));
      });
    const results = await Promise.all([run('a'), run('b')]);
    for (const result of results) expect(result, result.stderr).toMatchObject({ code: 0 });
    const conflicts = results.map((r) => (JSON.parse(r.stdout) as { conflicts: number }).conflicts);

    const store = await open(dir);
    const record = (await store.read('counter'))!;
    expect(record.versions).toHaveLength(100);
    expect(record.versions.map((v) => v.id)).toEqual(Array.from({ length: 100 }, (_, i) => String(i + 1)));
    const values = await Promise.all(record.versions.map((v) => store.readSecret('counter', v.id)));
    expect(values.filter((v) => v.startsWith('a-'))).toHaveLength(50);
    expect(values.filter((v) => v.startsWith('b-'))).toHaveLength(50);
    // Both really raced (a serial run would switch workers once and never lose a compare-and-set).
    const switches = values.filter((v, i) => i > 0 && v[0] !== values[i - 1]![0]).length;
    expect(switches > 1 || conflicts[0]! + conflicts[1]! > 0).toBe(true);
    // Each worker's own values stay in the order it wrote them.
    for (const worker of ['a', 'b']) {
      const mine = values.filter((v) => v.startsWith(`${worker}-`)).map((v) => Number(v.split('-')[1]));
      expect(mine).toEqual(Array.from({ length: 50 }, (_, i) => i));
    }
  }, 60_000);
});

/**
 * Runs the TypeScript source directly with Node's type stripping (the tsconfig is
 * erasableSyntaxOnly for this): a resolve hook maps the NodeNext-style "./x.js" imports to
 * "./x.ts". This tests the code in the tree, not whatever dist/ happens to hold.
 */
const childScript = `
import { registerHooks } from 'node:module';
registerHooks({
  resolve(specifier, context, nextResolve) {
    try {
      return nextResolve(specifier, context);
    } catch (error) {
      if (error?.code === 'ERR_MODULE_NOT_FOUND' && specifier.startsWith('.') && specifier.endsWith('.js')) {
        return nextResolve(specifier.slice(0, -3) + '.ts', context);
      }
      throw error;
    }
  },
});
const { createFileStore } = await import(process.env.SRC);
const context = { configDir: process.env.STORE_DIR, env: {}, resolveSecret: async () => '', debug: () => {} };
const store = await createFileStore('default', { type: 'file', path: 'state/store.enc', keyFile: 'state/store.key' }, context);
const worker = process.env.WORKER;
process.stdout.write('ready\\n');
for await (const _ of process.stdin) break;
let conflicts = 0;
for (let i = 0; i < Number(process.env.COUNT); ) {
  const record = await store.read('counter');
  const secret = worker + '-' + i;
  const meta = { label: 'current', fingerprint: 'sha256:000000000000', createdAt: new Date().toISOString(), labelledAt: new Date().toISOString(), origin: 'generated' };
  try {
    await store.addVersion('counter', record?.revision, secret, meta);
    i++;
  } catch (error) {
    if (error?.kind !== 'conflict') throw error;
    conflicts++;
  }
}
console.log(JSON.stringify({ worker, conflicts }));
`;
