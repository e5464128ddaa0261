/**
 * Start-up benchmark (`npm run bench`): cron runs and admins pay start-up on every call.
 * Times whole processes, interleaved round by round so machine noise hits every command
 * alike, and reports each median as a ratio to `node -e 0` measured in the same run, in wall
 * time and in CPU time (the children's user + system time, which a busy machine disturbs less).
 * Each command runs as shipped (bin/provkey: --help and --version from the build's manifest, any
 * other command the bundle with V8's code cache), without the code cache, through commander
 * (--help), and unbundled (dist/cli/main.js, the tsc output), so each choice shows its effect.
 *
 *   BENCH_ROUNDS=25 npm run bench
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { interleaved, loadNow } from './measure.ts';
import { seedWorkspace } from './seed.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = path.join(root, 'bin/provkey');
const unbundled = path.join(root, 'dist/cli/main.js');
const rounds = Number(process.env.BENCH_ROUNDS ?? 25);
const dir = mkdtempSync(path.join(tmpdir(), 'provkey-bench-'));
const cache = path.join(dir, 'cache');
const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', XDG_CACHE_HOME: cache };
delete env.NODE_COMPILE_CACHE;

// One key, and a realistic 20, on the embedded store (nothing listens on 127.0.0.1:9: status
// does not contact targets).
const seed = (name: string, count: number) =>
  seedWorkspace({ dir: path.join(dir, name), count, scimUrl: 'http://127.0.0.1:9/scim/v2', adminUrl: 'http://127.0.0.1:9/admin/tokens', concurrency: 4, budgetMs: 600_000, env });
const one = (await seed('one', 1)).workspace!;
const twenty = (await seed('twenty', 20)).workspace!;

const noCache = { NODE_DISABLE_COMPILE_CACHE: '1' };
const node = process.execPath;
const commands = {
  'node -e 0 (baseline)': { command: node, args: ['-e', '0'] },
  'provkey --help': { command: node, args: [bin, '--help'] },
  '  through commander (--help --json)': { command: node, args: [bin, '--help', '--json'] },
  '  unbundled (dist/cli/main.js)': { command: node, args: [unbundled, '--help'], env: noCache },
  'provkey generate': { command: node, args: [bin, 'generate'] },
  'provkey status (1 key)': { command: node, args: [bin, '--config', one.config, 'status'] },
  '  without the code cache': { command: node, args: [bin, '--config', one.config, 'status'], env: noCache },
  '  unbundled (dist/cli/main.js) ': { command: node, args: [unbundled, '--config', one.config, 'status'], env: noCache },
  'provkey status (20 keys)': { command: node, args: [bin, '--config', twenty.config, 'status'] },
  'provkey status --json (20 keys)': { command: node, args: [bin, '--config', twenty.config, 'status', '--json'] },
  'import ldapts (avoided on SCIM keys)': { command: node, args: ['--input-type=module', '-e', `await import(${JSON.stringify(path.join(root, 'node_modules/ldapts/dist/index.mjs'))})`] },
};
// Three warm-up rounds: bin/provkey writes a command's code cache after each of its first three runs.
const figures = interleaved(commands, { rounds, cwd: dir, env, warmup: 3 });
rmSync(dir, { recursive: true, force: true });

const baseWall = figures.wall.get('node -e 0 (baseline)')!;
const baseCpu = figures.cpu.get('node -e 0 (baseline)')!;
console.log(`start-up, median of ${rounds} interleaved runs each (Node ${process.versions.node}, ${process.platform}/${process.arch}; load ${figures.load[0]} → ${loadNow()})\n`);
console.log(`${'command'.padEnd(40)} ${'wall'.padStart(9)} ${'ratio'.padStart(6)} ${'CPU'.padStart(9)} ${'ratio'.padStart(6)}`);
for (const name of Object.keys(commands)) {
  const wall = figures.wall.get(name)!;
  const cpu = figures.cpu.get(name)!;
  console.log(`${name.trimEnd().padEnd(40)} ${wall.toFixed(1).padStart(7)}ms ${(wall / baseWall).toFixed(2).padStart(5)}× ${cpu.toFixed(0).padStart(7)}ms ${(cpu / baseCpu).toFixed(2).padStart(5)}×`);
}
