/**
 * Start-up benchmark (`npm run bench`): cron runs and admins pay start-up on every call.
 * Times whole processes, interleaved round by round so machine noise hits every command
 * alike, and reports each median as a ratio to `node -e 0` measured in the same run.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = path.join(root, 'bin/provkey');
const rounds = Number(process.env.BENCH_ROUNDS ?? 25);
const dir = mkdtempSync(path.join(tmpdir(), 'provkey-bench-'));

// A realistic status: 20 keys on the embedded file store, each with a few versions.
const keys = Array.from({ length: 20 }, (_, i) => `  app-${i}:\n    target: { type: scim, url: "http://127.0.0.1:9/scim/v2", applier: { type: store } }\n`).join('');
writeFileSync(path.join(dir, 'provkey.yaml'), `keys:\n${keys}`);
const { initFileStore, createFileStore } = await import(path.join(root, 'dist/stores/file.js'));
const context = { configDir: dir, env: process.env, resolveSecret: async () => '', debug: () => {} };
const storeConfig = { type: 'file', path: '.provkey/store.enc', keyFile: '.provkey/store.key' };
await initFileStore(storeConfig, context, {});
const store = await createFileStore('default', storeConfig, context);
for (let i = 0; i < 20; i++) {
  let revision: string | undefined;
  for (let v = 0; v < 4; v++) {
    const now = new Date().toISOString();
    const added = await store.addVersion(`app-${i}`, revision, `bench-secret-${i}-${v}-${'x'.repeat(40)}`, { label: v === 3 ? 'current' : 'previous', fingerprint: `sha256:${i}${v}`, createdAt: now, labelledAt: now, origin: 'generated' });
    revision = added.record.revision;
  }
}
await store.close();

const commands: Record<string, string[]> = {
  'node -e 0 (baseline)': ['-e', '0'],
  'provkey --help': [bin, '--help'],
  'provkey generate': [bin, 'generate'],
  'provkey status (20 keys)': [bin, 'status'],
  'provkey status --json': [bin, 'status', '--json'],
  'import ldapts (avoided on SCIM keys)': ['-e', 'await import("ldapts")', '--input-type=module'],
};
const samples = new Map<string, number[]>(Object.keys(commands).map((name) => [name, []]));
for (let round = 0; round < rounds + 2; round++) {
  for (const [name, args] of Object.entries(commands)) {
    const start = process.hrtime.bigint();
    const run = spawnSync(process.execPath, args, { cwd: name.startsWith('import') ? root : dir, stdio: 'ignore', env: { ...process.env, NO_COLOR: '1' } });
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (run.status !== 0) throw new Error(`${name} exited ${run.status} in ${dir}`);
    if (round >= 2) samples.get(name)!.push(ms); // two warm-up rounds fill the page cache
  }
}
if (!process.env.KEEP) rmSync(dir, { recursive: true, force: true });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const baseline = median(samples.get('node -e 0 (baseline)')!);
console.log(`start-up, median of ${rounds} runs each (Node ${process.versions.node}, ${process.platform}/${process.arch})\n`);
console.log(`${'command'.padEnd(52)} ${'median'.padStart(9)} ${'p90'.padStart(9)}  ratio to node -e 0`);
for (const [name, xs] of samples) {
  const sorted = [...xs].sort((a, b) => a - b);
  const p90 = sorted[Math.floor(sorted.length * 0.9)]!;
  console.log(`${name.padEnd(52)} ${median(xs).toFixed(1).padStart(7)}ms ${p90.toFixed(1).padStart(7)}ms  ${(median(xs) / baseline).toFixed(2)}x`);
}
