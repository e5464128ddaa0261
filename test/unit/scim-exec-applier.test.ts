// The exec applier with a tiny hook script run by process.execPath: what the hook receives
// (stdin, argv, env), in which order, and how failures and hangs come back.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/core/fingerprint.js';
import { createExecApplier, runHook, type ExecApplierOptions } from '../../src/targets/scim/appliers/exec.js';
import type { SecretInUse } from '../../src/targets/target.js';

// Logs what it got; HOOK_MODE makes it fail, hang (with a grandchild), or exit early.
const HOOK = `
const fs = require('node:fs');
const { spawn } = require('node:child_process');
const stdin = fs.readFileSync(0, 'utf8');
const env = process.env;
fs.appendFileSync(env.HOOK_LOG, JSON.stringify({
  argv: process.argv.slice(2),
  stdin,
  cwd: process.cwd(),
  action: env.PROVKEY_ACTION,
  key: env.PROVKEY_KEY,
  fp: env.PROVKEY_FINGERPRINT,
  replaces: env.PROVKEY_REPLACES_FINGERPRINT ?? null,
  tokenInEnv: Object.values(env).some((v) => v && stdin.trim() && v.includes(stdin.trim())),
  env,
}) + '\\n');
const fail = (env.HOOK_FAIL_ON ?? '').split(',').includes(env.PROVKEY_ACTION);
if (env.HOOK_MODE === 'fail' || fail) {
  process.stderr.write('first line\\n');
  process.stderr.write('cannot install ' + stdin.trim() + ': ' + 'x'.repeat(300) + '\\n\\n');
  process.exit(3);
}
if (env.HOOK_MODE === 'hang') {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  fs.writeFileSync(env.HOOK_LOG + '.grandchild', String(child.pid));
  setInterval(() => {}, 1000);
}
if (env.HOOK_MODE === 'signal') process.kill(process.pid, 'SIGKILL');
`;

let dir: string;
let hookFile: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'provkey-exec-'));
  hookFile = join(dir, 'hook.cjs');
  writeFileSync(hookFile, HOOK);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function secret(value: string): SecretInUse {
  return { value, fingerprint: fingerprint(value) };
}

let runs = 0;
function setup(env: Record<string, string> = {}, timeoutMs = 10_000): { options: ExecApplierOptions; calls: () => Array<Record<string, unknown>>; log: string } {
  const log = join(dir, `calls-${++runs}.jsonl`);
  const options: ExecApplierOptions = {
    keyName: 'entra-scim',
    command: [process.execPath, hookFile, '--flag', 'value'],
    timeoutMs,
    cwd: dir,
    env: { PATH: process.env.PATH, HOOK_LOG: log, PROVKEY_REPLACES_FINGERPRINT: 'stale-from-parent', ...env },
    passEnv: ['HOOK_LOG', 'HOOK_MODE', 'HOOK_FAIL_ON'],
  };
  const calls = (): Array<Record<string, unknown>> => {
    try {
      return readFileSync(log, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    } catch {
      return [];
    }
  };
  return { options, calls, log };
}

const current = secret('pk_current_AAAAAAAAAAAAAAAAAAAA');
const next = secret('pk_next_BBBBBBBBBBBBBBBBBBBBBBBB');

describe('exec applier', () => {
  it('set: token on stdin only, action and fingerprints in env, argv untouched, cwd = config dir', async () => {
    const { options, calls } = setup();
    expect(await createExecApplier(options).set({ next, current, replace: false })).toMatchObject({ ok: true });
    expect(calls()).toEqual([
      { argv: ['--flag', 'value'], stdin: `${next.value}\n`, cwd: dir, action: 'apply', key: 'entra-scim', fp: next.fingerprint, replaces: null, tokenInEnv: false, env: expect.any(Object) },
    ]);
  });

  it("the hook gets a minimal environment: none of provkey's credentials, only the base variables, passEnv and PROVKEY_*", async () => {
    const { options, calls, log } = setup({
      // provkey's own credentials, as a real run has them.
      PROVKEY_PASSPHRASE: 'file-store-master-passphrase',
      VAULT_TOKEN: 'hvs.vault-token-of-provkey',
      APP_ADMIN_TOKEN: 'admin-token-behind-an-env-ref',
      AWS_SECRET_ACCESS_KEY: 'aws-secret',
      HOME: '/home/provkey',
      LANG: 'C.UTF-8',
      LC_ALL: 'C.UTF-8',
      TZ: 'UTC',
      TMPDIR: dir,
      DEPLOY_ENV: 'prod',
    });
    options.passEnv = [...options.passEnv!, 'DEPLOY_ENV', 'NOT_SET_ANYWHERE'];
    expect(await createExecApplier(options).set({ next, current, replace: true })).toMatchObject({ ok: true });
    const [applied, revoked] = calls();
    expect(applied!.env).toEqual({
      PATH: process.env.PATH,
      HOME: '/home/provkey',
      LANG: 'C.UTF-8',
      LC_ALL: 'C.UTF-8',
      TZ: 'UTC',
      TMPDIR: dir,
      HOOK_LOG: log,
      DEPLOY_ENV: 'prod',
      PROVKEY_ACTION: 'apply',
      PROVKEY_KEY: 'entra-scim',
      PROVKEY_FINGERPRINT: next.fingerprint,
      PROVKEY_REPLACES_FINGERPRINT: current.fingerprint,
    });
    expect(Object.keys(revoked!.env as object)).not.toContain('PROVKEY_REPLACES_FINGERPRINT');
    const everything = JSON.stringify(calls());
    for (const secretValue of ['file-store-master-passphrase', 'hvs.vault-token-of-provkey', 'admin-token-behind-an-env-ref', 'aws-secret']) {
      expect(everything).not.toContain(secretValue);
    }
  });

  it('passEnv cannot set the PROVKEY_* variables, and unset base variables stay unset', async () => {
    const { options, calls } = setup({ PROVKEY_ACTION: 'revoke', PROVKEY_PASSPHRASE: 'secret' });
    options.env = { HOOK_LOG: options.env.HOOK_LOG, PROVKEY_ACTION: 'revoke', PROVKEY_PASSPHRASE: 'secret' };
    options.passEnv = ['HOOK_LOG', 'PROVKEY_ACTION', 'PROVKEY_PASSPHRASE'];
    expect(await runHook({ ...options, command: [process.execPath, hookFile] }, 'apply', next)).toMatchObject({ ok: true });
    expect(calls()[0]!.env).toEqual({ HOOK_LOG: options.env.HOOK_LOG, PROVKEY_ACTION: 'apply', PROVKEY_KEY: 'entra-scim', PROVKEY_FINGERPRINT: next.fingerprint });
  });

  it('set with replace: apply (told what it replaces), then revoke the old token', async () => {
    const { options, calls } = setup();
    const result = await createExecApplier(options).set({ next, current, replace: true });
    expect(result).toMatchObject({ ok: true });
    expect(calls().map((c) => [c.action, c.stdin, c.fp, c.replaces])).toEqual([
      ['apply', `${next.value}\n`, next.fingerprint, current.fingerprint],
      ['revoke', `${current.value}\n`, current.fingerprint, null],
    ]);
    expect(JSON.stringify(result)).not.toContain(next.value);
  });

  it('retire: revoke with the old token', async () => {
    const { options, calls } = setup();
    expect(await createExecApplier(options).retire({ old: current, current: next })).toMatchObject({ ok: true });
    expect(calls().map((c) => [c.action, c.stdin])).toEqual([['revoke', `${current.value}\n`]]);
  });

  it('rollback: rollback with the next token, then apply with the current one', async () => {
    const { options, calls } = setup();
    expect(await createExecApplier(options).rollback({ next, current })).toMatchObject({ ok: true });
    expect(calls().map((c) => [c.action, c.stdin, c.fp])).toEqual([
      ['rollback', `${next.value}\n`, next.fingerprint],
      ['apply', `${current.value}\n`, current.fingerprint],
    ]);
  });

  it('rollback stops at the first failure', async () => {
    const { options, calls } = setup({ HOOK_FAIL_ON: 'rollback' });
    expect(await createExecApplier(options).rollback({ next, current })).toMatchObject({ ok: false, reason: 'rejected' });
    expect(calls().map((c) => c.action)).toEqual(['rollback']);
  });

  it('a non-zero exit is "rejected" with the last stderr line, scrubbed and truncated', async () => {
    const { options } = setup({ HOOK_MODE: 'fail' });
    const result = await createExecApplier(options).set({ next, current, replace: false });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.reason).toBe('rejected');
    expect(result.detail).toMatch(new RegExp(`^\\S+ \\(apply ${next.fingerprint}\\) exited with 3: cannot install ${next.fingerprint}: x+…$`));
    expect(result.detail).not.toContain(next.value);
    expect(result.detail).not.toContain('first line');
    const reported = result.detail.slice(result.detail.indexOf('exited with 3: ') + 'exited with 3: '.length);
    expect(reported.length).toBe(200);
  });

  it('a hang is killed with its whole process group after the timeout, and is "unreachable" (a slow app), not a refusal', async () => {
    const { options, log } = setup({ HOOK_MODE: 'hang' }, 500);
    const started = Date.now();
    const result = await runHook(options, 'apply', next);
    expect(result).toMatchObject({ ok: false, reason: 'unreachable', detail: expect.stringContaining('did not finish within 500ms and was killed') });
    expect(Date.now() - started).toBeLessThan(5000);
    const grandchild = Number(readFileSync(`${log}.grandchild`, 'utf8'));
    await expect.poll(() => isAlive(grandchild), { timeout: 3000 }).toBe(false);
  });

  it('a hook killed by a signal is an "error"', async () => {
    const { options } = setup({ HOOK_MODE: 'signal' });
    expect(await runHook(options, 'apply', next)).toMatchObject({ ok: false, reason: 'error', detail: expect.stringContaining('killed by SIGKILL') });
  });

  it('a missing command is an "error" naming it, not an exception', async () => {
    const { options } = setup();
    const result = await runHook({ ...options, command: [join(dir, 'no-such-hook')] }, 'apply', next);
    expect(result).toMatchObject({ ok: false, reason: 'error' });
    if (!result.ok) expect(result.detail).toMatch(/^cannot run .*no-such-hook \(apply sha256:[0-9a-f]{12}\): ENOENT$/);
  });

  it('a hook that exits without reading stdin is judged by its exit code', async () => {
    const { options } = setup();
    const ok = await runHook({ ...options, command: [process.execPath, '-e', 'process.exit(0)'] }, 'apply', next);
    expect(ok).toMatchObject({ ok: true });
    const failed = await runHook({ ...options, command: [process.execPath, '-e', 'process.exit(4)'] }, 'apply', next);
    expect(failed).toMatchObject({ ok: false, reason: 'rejected' });
  });

  it('exit 75 (EX_TEMPFAIL) or 69 (EX_UNAVAILABLE) is "unreachable": the hook could not reach the app', async () => {
    const { options } = setup();
    for (const code of [75, 69]) {
      const script = `process.stderr.write('connect ECONNREFUSED 127.0.0.1:8443\\n'); process.exit(${code})`;
      const result = await runHook({ ...options, command: [process.execPath, '-e', script] }, 'apply', next);
      expect(result).toMatchObject({ ok: false, reason: 'unreachable', detail: expect.stringContaining(`could not reach the app (exit ${code}): connect ECONNREFUSED`) });
    }
  });
});

/** Alive and not a zombie (an orphan waits for a reaper that a container may not have). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}
