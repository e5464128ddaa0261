// `provkey completion bash|zsh|fish`: scripts generated from the commander tree, loaded into
// the real shells. bash and fish are asked for completions as they would be at a prompt; zsh
// loads the script through compinit and must register it and define a function per command.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeRun, runProvkey } from '../harness/cli.ts';
import { ensureTestTools } from '../harness/installed-cli.ts';

let dir: string;
const scripts: Record<string, string> = {};

function shell(command: string, args: string[]): string {
  const which = spawnSync('sh', ['-c', `command -v ${command}`]);
  expect(which.status, `${command} is required (test/harness/install/tools.sh installs it)`).toBe(0);
  const run = spawnSync(command, args, { encoding: 'utf8', cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir } });
  expect(run.status, `${command} ${args.join(' ')}\n${run.stdout}\n${run.stderr}`).toBe(0);
  return run.stdout;
}

/** What bash offers for `words` (the last one being completed), as `complete -F` would call it. */
function bashCompletes(words: string[]): string[] {
  const array = words.map((w) => `'${w}'`).join(' ');
  const out = shell('bash', ['-c', `source "$1"; COMP_WORDS=(${array}); COMP_CWORD=${words.length - 1}; _provkey_complete; printf '%s\\n' "\${COMPREPLY[@]}"`, 'bash', path.join(dir, 'provkey.bash')]);
  return out.split('\n').filter(Boolean);
}

function fishCompletes(line: string): string[] {
  const out = shell('fish', ['-c', `source ${path.join(dir, 'provkey.fish')}; complete -C '${line}'`]);
  return out.split('\n').filter(Boolean).map((l) => l.split('\t')[0]!);
}

beforeAll(async () => {
  ensureTestTools();
  dir = mkdtempSync(path.join(tmpdir(), 'provkey-completion-'));
  for (const [shellName, file] of [['bash', 'provkey.bash'], ['zsh', '_provkey'], ['fish', 'provkey.fish']] as const) {
    const result = await runProvkey(['completion', shellName]);
    expect(result.code, describeRun(result)).toBe(0);
    scripts[shellName] = result.stdout;
    writeFileSync(path.join(dir, file), result.stdout);
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('shell completion from the command tree', () => {
  it('bash: commands, subcommands, per-command flags, flag values with choices', () => {
    shell('bash', ['-n', path.join(dir, 'provkey.bash')]);
    expect(bashCompletes(['provkey', 'ro'])).toEqual(['rotate']);
    expect(bashCompletes(['provkey', 'rotate', '--sh'])).toEqual(['--shard']);
    expect(bashCompletes(['provkey', '--config', 'x.yaml', 'rotate', '--j'])).toEqual(['--jitter', '--json']);
    expect(bashCompletes(['provkey', 'audit', 've'])).toEqual(['verify']);
    expect(bashCompletes(['provkey', 'generate', '--format', ''])).toEqual(['token', 'password', 'base64url', 'hex']);
    expect(bashCompletes(['provkey', 'completion', 'z'])).toEqual(['zsh']);
    expect(bashCompletes(['provkey', 'import', '--exp'])).toEqual(['--expires-at']);
    // Every global flag, on every command.
    expect(bashCompletes(['provkey', 'status', '--st'])).toEqual(['--state-dir']);
  });

  it('fish: the same answers', () => {
    shell('fish', ['-n', path.join(dir, 'provkey.fish')]);
    expect(fishCompletes('provkey rot')).toEqual(['rotate']);
    expect(fishCompletes('provkey rotate --sh')).toEqual(['--shard']);
    const audit = fishCompletes('provkey audit ');
    expect(audit).toContain('verify');
    expect(audit).not.toContain('rotate');
    expect(fishCompletes('provkey generate --format ').sort()).toEqual(['base64url', 'hex', 'password', 'token']);
    expect(fishCompletes('provkey completion ').sort()).toEqual(['bash', 'fish', 'zsh']);
    expect(fishCompletes('provkey status --qu')).toEqual(['--quiet']);
  });

  it('zsh: compinit loads it, it registers for provkey and defines each command', () => {
    shell('zsh', ['-n', path.join(dir, '_provkey')]);
    const out = shell('zsh', ['-c', `autoload -U compinit; compinit -u -d ${path.join(dir, 'zcompdump')}; source ${path.join(dir, '_provkey')}; print $_comps[provkey]; whence -w _provkey_rotate _provkey_audit_verify _provkey_completion`]);
    expect(out.split('\n')[0]).toBe('_provkey');
    for (const fn of ['_provkey_rotate', '_provkey_audit_verify', '_provkey_completion']) expect(out).toContain(`${fn}: function`);
    expect(scripts.zsh).toContain("'1:completion:(bash zsh fish)'");
    expect(scripts.zsh).toContain("'--shard[");
  });

  it('an unknown shell is a usage error (exit 2)', async () => {
    const result = await runProvkey(['completion', 'tcsh']);
    expect(result.code, describeRun(result)).toBe(2);
    expect(result.stderr).toContain('bash, zsh, fish');
  });
});
