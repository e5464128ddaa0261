import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/audit-log.js';
import { loadConfig } from '../../src/config/load.js';
import { parseConfigText } from '../../src/config/located.js';
import { ConfigError, ExitCode, NeedsHumanError } from '../../src/core/errors.js';
import { fingerprint } from '../../src/core/fingerprint.js';
import { forgetSweeps } from '../../src/io/stale-temp.js';
import type { AdapterContext } from '../../src/stores/context.js';
import { createFileStore } from '../../src/stores/file.js';
import { assertHookTrusted, runHook, type ExecApplierOptions } from '../../src/targets/scim/appliers/exec.js';
import { createScimTarget } from '../../src/targets/scim/scim-target.js';

/**
 * Item 10 of issue 7: state files are opened without following links and never block on a
 * FIFO; hooks and the config must not be writable by others; temp files a killed run left
 * are cleaned by the next one.
 */

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'provkey-safe-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const context = (dir: string): AdapterContext => ({
  configDir: dir,
  env: {},
  resolveSecret: async () => {
    throw new Error('unused');
  },
  debug: () => {},
});
const storeConfig = { type: 'file' as const, path: 'state/store.enc', keyFile: 'state/store.key' };
const openStore = (dir: string) => createFileStore('default', storeConfig, context(dir));
const at = new Date().toISOString();
const meta = (secret: string) => ({ label: 'current' as const, fingerprint: fingerprint(secret), createdAt: at, labelledAt: at, origin: 'generated' as const });

function mkfifo(file: string): void {
  const made = spawnSync('mkfifo', [file]);
  if (made.status !== 0) throw new Error(`mkfifo failed: ${made.stderr.toString()}`);
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error('expected a refusal');
    },
    (error: Error) => error,
  );
}

describe('state files: no symlink followed, no FIFO waited on', () => {
  it('a symlinked audit.jsonl is refused and its target is left alone', async () => {
    const dir = tempDir();
    const elsewhere = path.join(dir, 'elsewhere.txt');
    writeFileSync(elsewhere, 'not yours\n');
    symlinkSync(elsewhere, path.join(dir, 'audit.jsonl'));
    const error = await rejection(new AuditLog(path.join(dir, 'audit.jsonl')).append({ event: 'key.tested', key: 'app' }));
    expect(error).toBeInstanceOf(NeedsHumanError);
    expect((error as NeedsHumanError).exitCode).toBe(ExitCode.needsHuman);
    expect(error.message).toMatch(/refusing to open audit log .*audit\.jsonl: it is a symbolic link/);
    expect(readFileSync(elsewhere, 'utf8')).toBe('not yours\n');
  });

  it('a symlinked store file is refused', async () => {
    const dir = tempDir();
    const store = await openStore(dir);
    await store.addVersion('app', undefined, 'value-one-0123456789', meta('value-one-0123456789'));
    const real = path.join(dir, 'state/store.enc');
    const moved = path.join(dir, 'moved.enc');
    writeFileSync(moved, readFileSync(real));
    rmSync(real);
    symlinkSync(moved, real);
    expect((await rejection((await openStore(dir)).read('app'))).message).toMatch(/store file .* is a symbolic link/);
  });

  it('a FIFO in place of the store file is refused at once instead of hanging', async () => {
    const dir = tempDir();
    mkdirSync(path.join(dir, 'state'));
    mkfifo(path.join(dir, 'state/store.enc'));
    const error = await rejection((await openStore(dir)).read('app'));
    expect(error.message).toMatch(/store file .*store\.enc: it is not a regular file \(a FIFO\)/);
  });

  it('a FIFO in place of the key file is refused at once instead of hanging', async () => {
    const dir = tempDir();
    const store = await openStore(dir);
    await store.addVersion('app', undefined, 'value-one-0123456789', meta('value-one-0123456789'));
    rmSync(path.join(dir, 'state/store.key'));
    mkfifo(path.join(dir, 'state/store.key'));
    const error = await rejection((await openStore(dir)).read('app'));
    expect(error.message).toMatch(/key file .*store\.key: it is not a regular file \(a FIFO\)/);
  });

  it('a FIFO in place of audit.jsonl is refused at once, for reading and appending', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'audit.jsonl');
    mkfifo(file);
    const log = new AuditLog(file);
    expect((await rejection(log.checkWritable())).message).toMatch(/audit log .* it is not a regular file \(a FIFO\)/);
    expect((await rejection(log.readAll())).message).toMatch(/audit log .* it is not a regular file/);
  });

  it('a symlinked key file is followed (a Kubernetes Secret volume mounts keys as links); its target must still be private', async () => {
    const dir = tempDir();
    const store = await openStore(dir);
    await store.addVersion('app', undefined, 'value-one-0123456789', meta('value-one-0123456789'));
    const keyFile = path.join(dir, 'state/store.key');
    const mounted = path.join(dir, 'mounted-key');
    writeFileSync(mounted, readFileSync(keyFile), { mode: 0o600 });
    rmSync(keyFile);
    symlinkSync(mounted, keyFile);
    expect((await (await openStore(dir)).read('app'))?.versions).toHaveLength(1);
    chmodSync(mounted, 0o644);
    expect((await rejection((await openStore(dir)).read('app'))).message).toMatch(/key file .* is accessible by group or others/);
  });
});

describe('hooks and config others can write are refused (exit 2, naming the file)', () => {
  function hookSetup(): { dir: string; hook: string; marker: string; options: ExecApplierOptions } {
    const dir = tempDir();
    chmodSync(dir, 0o700);
    const hook = path.join(dir, 'hook.sh');
    const marker = path.join(dir, 'ran');
    writeFileSync(hook, `#!/bin/sh\ncat >/dev/null\ntouch ${marker}\n`, { mode: 0o700 });
    chmodSync(hook, 0o700);
    return { dir, hook, marker, options: { keyName: 'app', command: [hook], timeoutMs: 10_000, cwd: dir, env: { PATH: process.env.PATH } } };
  }
  const token = { value: 'pk_hook_token_0123456789abcdef', fingerprint: fingerprint('pk_hook_token_0123456789abcdef') };

  it('a private hook in a private directory runs', async () => {
    const { options, marker } = hookSetup();
    await assertHookTrusted(options);
    expect(await runHook(options, 'apply', token)).toMatchObject({ ok: true });
    expect(existsSync(marker)).toBe(true);
  });

  it('a world-writable hook is refused and never run', async () => {
    const { options, hook, marker } = hookSetup();
    chmodSync(hook, 0o777);
    const error = await rejection(assertHookTrusted(options));
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).exitCode).toBe(ExitCode.usage);
    expect(error.message).toBe(`exec hook of app ${hook} is writable by group or others (mode 0777): refusing to use it; run chmod go-w ${hook}`);
    expect(await runHook(options, 'apply', token)).toMatchObject({ ok: false, detail: expect.stringContaining('writable by group or others') });
    expect(existsSync(marker)).toBe(false);
  });

  it('a hook in a group-writable directory, and an interpreter script others can write, are refused', async () => {
    const { options, dir, marker } = hookSetup();
    chmodSync(dir, 0o770);
    expect((await rejection(assertHookTrusted(options))).message).toMatch(/directory of exec hook of app .* is writable by group or others \(mode 0770\)/);
    chmodSync(dir, 0o700);
    const script = path.join(dir, 'hook.cjs');
    writeFileSync(script, 'process.exit(0)\n', { mode: 0o666 });
    chmodSync(script, 0o666);
    expect((await rejection(assertHookTrusted({ ...options, command: [process.execPath, script] }))).message).toMatch(/exec hook script of app .*hook\.cjs is writable by group or others/);
    expect(existsSync(marker)).toBe(false);
  });

  it('the SCIM target with such a hook is refused when it is opened, before any change', async () => {
    const { dir, hook } = hookSetup();
    chmodSync(hook, 0o722);
    const config = parseConfigText(
      `keys:\n  app:\n    target:\n      type: scim\n      url: http://127.0.0.1:9/scim/v2\n      applier:\n        type: exec\n        command: [${hook}]\n`,
      path.join(dir, 'provkey.yaml'),
    );
    const target = config.keys.app!.config.target;
    if (target.type !== 'scim') throw new Error('scim expected');
    const error = await rejection(createScimTarget('app', target, { ...context(dir), env: { PATH: process.env.PATH } }));
    expect((error as ConfigError).exitCode).toBe(ExitCode.usage);
    expect(error.message).toMatch(/exec hook of app .*hook\.sh is writable by group or others \(mode 0722\)/);
  });

  it('a group- or world-writable config file is refused', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'provkey.yaml');
    writeFileSync(file, 'version: 1\n');
    chmodSync(file, 0o664);
    const error = await rejection(loadConfig(file, { mustExist: true }));
    expect((error as ConfigError).exitCode).toBe(ExitCode.usage);
    expect(error.message).toBe(`config file ${file} is writable by group or others (mode 0664): refusing to use it; run chmod go-w ${file}`);
    chmodSync(file, 0o644);
    await expect(loadConfig(file, { mustExist: true })).resolves.toMatchObject({ file });
  });
});

describe('temp files a killed run left are cleaned by the next run', () => {
  /** A process that is SIGKILLed: the pid its temp files carry is then provably dead. */
  async function killedPid(): Promise<number> {
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    const pid = child.pid!;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    return pid;
  }

  it('removes .store.enc.*.tmp and lock temp files of a dead pid, keeps those of a live one', async () => {
    forgetSweeps();
    const dir = tempDir();
    const store = await openStore(dir);
    await store.addVersion('app', undefined, 'value-one-0123456789', meta('value-one-0123456789'));
    const state = path.join(dir, 'state');
    const dead = await killedPid();
    const live = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    try {
      const host = hostname();
      const leftovers = [`.store.enc.${host}.${dead}.0123456789ab.tmp`, `.store.enc.lock.${host}.${dead}.0123456789ab.tmp`];
      const legacyOld = `.store.enc.${dead}.abcdefabcdef.tmp`;
      const legacyLock = `store.enc.lock.${dead}.abcdefabcdef`;
      const kept = [`.store.enc.${host}.${live.pid}.0123456789ab.tmp`, `.store.enc.other-host.${dead}.0123456789ab.tmp`, `.store.enc.${dead}.fedcbafedcba.tmp`];
      for (const name of [...leftovers, legacyOld, legacyLock, ...kept]) writeFileSync(path.join(state, name), 'half-written');
      // Old-style names (no host) go only when their pid is gone AND they are older than a lock's stale time.
      const hourAgo = new Date(Date.now() - 3_600_000);
      for (const name of [legacyOld, legacyLock]) utimesSync(path.join(state, name), hourAgo, hourAgo);
      forgetSweeps(); // what a new run starts with: it has swept nothing yet
      await (await openStore(dir)).addVersion('other', undefined, 'value-two-0123456789', meta('value-two-0123456789'));
      const names = readdirSync(state);
      for (const name of [...leftovers, legacyOld, legacyLock]) expect(names, name).not.toContain(name);
      for (const name of kept) expect(names, name).toContain(name);
    } finally {
      live.kill('SIGKILL');
    }
  });

  it('the audit log cleans its own lock temp files', async () => {
    forgetSweeps();
    const dir = tempDir();
    const dead = await killedPid();
    const leftover = `.audit.jsonl.lock.${hostname()}.${dead}.0123456789ab.tmp`;
    writeFileSync(path.join(dir, leftover), '{}');
    await new AuditLog(path.join(dir, 'audit.jsonl')).append({ event: 'key.tested', key: 'app' });
    expect(readdirSync(dir)).not.toContain(leftover);
  });
});

describe('a key left in a temp file by a killed init', () => {
  it('is removed by the next write', async () => {
    forgetSweeps();
    const dir = tempDir();
    const store = await openStore(dir);
    await store.addVersion('app', undefined, 'value-one-0123456789', meta('value-one-0123456789'));
    const dead = await (async () => {
      const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
      return child.pid!;
    })();
    const leftover = `.store.key.${hostname()}.${dead}.0123456789ab.tmp`;
    writeFileSync(path.join(dir, 'state', leftover), 'a key\n', { mode: 0o600 });
    forgetSweeps();
    await (await openStore(dir)).addVersion('other', undefined, 'value-two-0123456789', meta('value-two-0123456789'));
    expect(readdirSync(path.join(dir, 'state'))).not.toContain(leftover);
  });
});
