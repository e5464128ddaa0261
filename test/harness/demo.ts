/**
 * `npm run demo`: the main job on the embedded default store, against a real local SCIM 2.0
 * service provider (SCIMMY): add a key, rotate it, test it, run a compromise drill, and show
 * the status table and the audit check — printed as a person would see it. Everything lives in
 * a temp dir that is removed at the end.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startScimServer } from './servers/scim.ts';

const bin = fileURLToPath(new URL('../../bin/provkey', import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'provkey-demo-'));
const colour = process.stdout.isTTY && !process.env.NO_COLOR;
const bold = (s: string) => (colour ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string) => (colour ? `\x1b[2m${s}\x1b[0m` : s);

const adminToken = randomBytes(24).toString('base64url');
const server = await startScimServer({ adminToken, propagationMs: 400 });
writeFileSync(path.join(dir, 'app-admin.token'), adminToken, { mode: 0o600 });

function provkey(...args: string[]): number {
  process.stdout.write(`\n${bold(`$ provkey ${args.join(' ')}`)}\n`);
  const run = spawnSync(process.execPath, [bin, ...args], {
    cwd: dir,
    stdio: 'inherit',
    env: { ...process.env, ...(colour ? { FORCE_COLOR: '1' } : {}) },
  });
  return run.status ?? 1;
}

let failures = 0;
try {
  console.log(bold('provkey demo') + dim(`  (a SCIMMY service provider at ${server.url}, files in ${dir})`));
  console.log(dim('The app accepts bearer tokens taught to it through its token endpoint; new tokens take ~0.4 s to reach every instance.'));
  const init = provkey(
    'init', '--key', 'demo-scim', '--url', server.url,
    '--applier', 'http', '--applier-url', server.adminUrl, '--applier-auth-ref', 'file:app-admin.token',
    '--interval', '30d', '--grace', '1h',
  );
  const steps = [
    init,
    provkey('add', 'demo-scim'),
    provkey('status'),
    provkey('rotate', 'demo-scim'),
    provkey('test', 'demo-scim'),
    provkey('drill', 'compromise', 'demo-scim', '--rto', '30s', '--yes'),
    provkey('status'),
    provkey('history', 'demo-scim'),
    provkey('audit', 'verify'),
  ];
  failures = steps.filter((code) => code !== 0).length;
  console.log(failures === 0 ? `\n${bold('demo finished: every step passed')}` : `\n${bold(`demo finished with ${failures} failed step(s)`)}`);
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exitCode = failures === 0 ? 0 : 1;
