// The `init` wizard at a real terminal (tmux): each answer is checked as it is typed, with the
// rules the config is loaded with, and a refused answer loses none of the answers given.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ensureTestTools, PROJECT_NODE } from '../harness/installed-cli.ts';

const CLI = path.join(new URL('../..', import.meta.url).pathname, 'bin/provkey');

function tmux(...args: string[]): string {
  const run = spawnSync('tmux', args, { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`tmux ${args[0]} failed: ${run.stderr}`);
  return run.stdout;
}

describe('init wizard at a terminal', () => {
  let dir: string;
  const session = `provkey-init-${process.pid}`;

  beforeAll(() => {
    ensureTestTools();
    dir = mkdtempSync(path.join(tmpdir(), 'provkey-init-wizard-'));
    // CI=true would make provkey non-interactive (it is, by design, in CI): the wizard needs a person's terminal.
    const command = `cd ${JSON.stringify(dir)} && env -u CI ${JSON.stringify(PROJECT_NODE)} ${JSON.stringify(CLI)} init; echo "EXIT=$?"; sleep 600`;
    tmux('new-session', '-d', '-s', session, '-x', '200', '-y', '50', command);
  });
  afterAll(() => {
    spawnSync('tmux', ['kill-session', '-t', session]);
    rmSync(dir, { recursive: true, force: true });
  });

  const screen = () => tmux('capture-pane', '-p', '-t', session);
  /** Waits until the screen shows `text` (a barrier on what a person would see), bounded. */
  async function see(text: string): Promise<string> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const shown = screen();
      if (shown.includes(text)) return shown;
      if (Date.now() > deadline) throw new Error(`the terminal never showed ${JSON.stringify(text)}; it shows:\n${shown}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  const type = (text: string) => tmux('send-keys', '-t', session, '-l', text);
  const press = (...keys: string[]) => tmux('send-keys', '-t', session, ...keys);
  const erase = (count: number) => press(...Array.from({ length: count }, () => 'BSpace'));

  it('refuses a bad answer where it is typed, keeps the earlier answers, and writes a config that loads', async () => {
    await see('Name of the first key');
    type('Bad Name');
    press('Enter');
    await see('a-z, 0-9');
    erase(8);
    type('app-scim');
    press('Enter');

    await see('SCIM base URL of the app');
    type('http://app.example.com/scim/v2');
    press('Enter');
    const refused = await see('plain http to a non-loopback host');
    expect(refused).toContain('✔ Name of the first key (e.g. entra-scim-prod): app-scim');
    erase(40);
    type('https://app.example.com/scim/v2');
    press('Enter');

    await see('How does the app learn a new token?');
    press('Down', 'Enter'); // provkey calls a token endpoint (HTTP)
    await see('Token endpoint URL');
    type('ftp://app.example.com/tokens');
    press('Enter');
    await see('scheme ftp: is not supported');
    erase(40);
    type('https://app.example.com/admin/scim-tokens');
    press('Enter');
    await see('admin token');
    erase(40);
    type('APP_ADMIN_TOKEN');
    press('Enter');
    await see('env:NAME, file:/path or key:OTHER-KEY');
    erase(40);
    type('env:APP_ADMIN_TOKEN');
    press('Enter');

    await see('Rotate every');
    erase(5);
    type('every week');
    press('Enter');
    await see('is not a duration');
    erase(20);
    type('7d');
    press('Enter');
    await see('Keep the previous token working for');
    erase(5);
    type('99999999999999999999d');
    press('Enter');
    await see('grace:');
    erase(30);
    type('1h');
    press('Enter');

    const done = await see('EXIT=');
    expect(done).toContain('EXIT=0');
    const config = parse(readFileSync(path.join(dir, 'provkey.yaml'), 'utf8')) as { keys: Record<string, { rotation: unknown; target: { url: string; applier: unknown } }> };
    expect(Object.keys(config.keys)).toEqual(['app-scim']);
    expect(config.keys['app-scim']!.rotation).toEqual({ interval: '7d', grace: '1h' });
    expect(config.keys['app-scim']!.target.url).toBe('https://app.example.com/scim/v2');
    expect(config.keys['app-scim']!.target.applier).toEqual({ type: 'http', url: 'https://app.example.com/admin/scim-tokens', authRef: 'env:APP_ADMIN_TOKEN' });
  });
});
