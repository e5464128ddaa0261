/**
 * Scale benchmark of the embedded store (issue 8): is the cost per key flat as the store grows?
 *
 *   npm run build && node test/bench/embedded-store.ts              # N = 1,000 and 10,000
 *   BENCH_SIZES=1000 BENCH_STORE=/old/checkout/dist/stores/file.js node test/bench/embedded-store.ts
 *
 * Each size runs in its own child process (so peak RSS is that size's alone) on a fresh store:
 * - add:     N new keys, one addVersion each;
 * - rotate:  per key, the store calls of one rotation (read, claim, add pending, three step
 *            updates, finish, readSecret): 6 writes + 2 reads, over 16 keys at a time as
 *            `rotate --all --concurrency 16` would;
 * - status:  a fresh store instance (a new process's open, with the row-digest check) reading
 *            every key, all at once, as `status` does;
 * - journal: the rotate phase again with the audit log as the journal, as a real run has it
 *            (every write announced and fsynced in the log before it commits).
 * Then the CLI itself at the largest size: `provkey status --json` and `provkey rotate --due`
 * with nothing due, wall time and peak RSS. Not a test: prints numbers, asserts nothing.
 * BENCH_STORE points at another build's dist/stores/file.js (e.g. the 0.1 release) to compare.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const storeModule = process.env.BENCH_STORE ?? path.join(root, 'dist/stores/file.js');
const concurrency = 16;

interface PhaseResult {
  ms: number;
  perKeyMs: number;
}
interface SizeResult {
  n: number;
  phases: Record<string, PhaseResult>;
  peakRssMb: number;
}

if (process.argv[2] === '--child') {
  console.log(JSON.stringify(await runSize(Number(process.argv[3]))));
} else {
  await main();
}

async function main(): Promise<void> {
  const sizes = (process.env.BENCH_SIZES ?? '1000,10000').split(',').map(Number);
  console.log(`embedded store scale (Node ${process.versions.node}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}, store ${path.relative(root, storeModule)})\n`);
  const results: SizeResult[] = [];
  for (const n of sizes) {
    const child = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--child', String(n)], { encoding: 'utf8', maxBuffer: 1 << 24 });
    if (child.status !== 0) throw new Error(`N=${n} failed: ${child.stderr}`);
    results.push(JSON.parse(child.stdout.trim().split('\n').at(-1)!) as SizeResult);
  }
  const phases = Object.keys(results[0]!.phases);
  console.log(`${'phase'.padEnd(10)} ${results.map((r) => `N=${r.n} ms/key`.padStart(16)).join(' ')} ${results.length > 1 ? 'growth'.padStart(8) : ''}`);
  for (const phase of phases) {
    const perKey = results.map((r) => r.phases[phase]!.perKeyMs);
    const growth = perKey.length > 1 ? `${(perKey.at(-1)! / perKey[0]!).toFixed(2)}×` : '';
    console.log(`${phase.padEnd(10)} ${perKey.map((ms) => ms.toFixed(3).padStart(16)).join(' ')} ${growth.padStart(8)}`);
  }
  console.log(`${'peak RSS'.padEnd(10)} ${results.map((r) => `${r.peakRssMb.toFixed(0)} MB`.padStart(16)).join(' ')}`);
  if (!process.env.BENCH_STORE) for (const n of sizes.filter((size) => size <= 10_000)) cliRuns(n);
}

async function runSize(n: number): Promise<SizeResult> {
  const { createFileStore } = (await import(storeModule)) as typeof import('../../src/stores/file.ts');
  const { AuditLog } = (await import(path.join(path.dirname(storeModule), '../audit/audit-log.js'))) as typeof import('../../src/audit/audit-log.ts');
  const dir = mkdtempSync(path.join(tmpdir(), 'provkey-bench-store-'));
  let peak = 0;
  const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const config = { type: 'file' as const, path: '.provkey/store.enc', keyFile: '.provkey/store.key' };
  const context = (journal?: InstanceType<typeof AuditLog>) => ({ configDir: dir, env: process.env, resolveSecret: async () => '', debug: () => {}, ...(journal ? { journal } : {}) });
  const names = Array.from({ length: n }, (_, i) => `app-${String(i).padStart(6, '0')}`);
  const meta = (label: 'current' | 'pending', i: number, v: number) => {
    const at = new Date().toISOString();
    return { label, fingerprint: `sha256:${i.toString(16)}${v}`, createdAt: at, labelledAt: at, origin: 'generated' as const };
  };
  const phases: Record<string, PhaseResult> = {};
  const timed = async (phase: string, keys: number, body: () => Promise<void>) => {
    const start = process.hrtime.bigint();
    await body();
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    phases[phase] = { ms, perKeyMs: ms / keys };
  };
  const inBatches = async (keys: string[], each: (name: string, i: number) => Promise<void>) => {
    let next = 0;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < keys.length) {
        const i = next++;
        await each(keys[i]!, i);
      }
    }));
  };
  /** The store calls one rotation makes (engine/rotate.ts): claim, create, set, test, deliver, finish. */
  const rotation = async (store: Awaited<ReturnType<typeof createFileStore>>, name: string, i: number) => {
    let record = (await store.read(name))!;
    record = await store.update(name, record.revision, { versions: record.versions, state: { ...record.state, claim: { id: `c${i}`, operation: 'rotate', step: 'claimed', startedAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 60_000).toISOString() } } });
    const added = await store.addVersion(name, record.revision, `bench-next-${i}-${'y'.repeat(40)}`, meta('pending', i, 2));
    record = added.record;
    for (const step of ['setting', 'tested', 'delivered']) {
      record = await store.update(name, record.revision, { versions: record.versions, state: { ...record.state, claim: { ...record.state.claim!, step } } });
    }
    const versions = record.versions.map((v) => ({ ...v, label: v.id === added.versionId ? ('current' as const) : ('previous' as const) }));
    await store.update(name, record.revision, { versions, state: { lastRotatedAt: new Date().toISOString() } });
    await store.readSecret(name, added.versionId);
  };

  const store = await createFileStore('default', config, context());
  await timed('add', n, () => inBatches(names, async (name, i) => void (await store.addVersion(name, undefined, `bench-secret-${i}-${'x'.repeat(40)}`, meta('current', i, 1)))));
  await timed('rotate', n, () => inBatches(names, (name, i) => rotation(store, name, i)));
  await store.close();
  await timed('status', n, async () => {
    const fresh = await createFileStore('default', config, context());
    await Promise.all(names.map((name) => fresh.read(name)));
    await fresh.close();
  });
  // With the audit log as journal, on a sample (every write is an fsynced log line: that cost is the log's, per write).
  const sampleKeys = names.slice(0, Math.min(n, 500));
  const journal = new AuditLog(path.join(dir, '.provkey/audit.jsonl'));
  const journaled = await createFileStore('default', { ...config, path: '.provkey/journaled.enc' }, context(journal));
  for (const [i, name] of sampleKeys.entries()) await journaled.addVersion(name, undefined, `bench-secret-${i}-${'x'.repeat(40)}`, meta('current', i, 1));
  await timed('journal', sampleKeys.length, () => inBatches(sampleKeys, (name, i) => rotation(journaled, name, i)));
  await journaled.close();
  clearInterval(sample);
  rmSync(dir, { recursive: true, force: true });
  return { n, phases, peakRssMb: Math.max(peak, process.memoryUsage().rss) / 2 ** 20 };
}

/** `provkey status --json` and `rotate --due` (nothing due) on an n-key config, as a cron tick runs them. */
function cliRuns(n: number): void {
  const dir = mkdtempSync(path.join(tmpdir(), 'provkey-bench-cli-'));
  try {
    // One flow-style line per key (interval: the default 30d): 10,000 keys stay under the config's 1 MiB limit.
    const keys = Array.from({ length: n }, (_, i) => `  app-${i}: { target: { type: scim, url: "http://127.0.0.1:9/s", applier: { type: store } } }\n`).join('');
    writeFileSync(path.join(dir, 'provkey.yaml'), `keys:\n${keys}`);
    const seed = spawnSync(process.execPath, ['--input-type=module', '-e', seedScript(n)], { cwd: dir, encoding: 'utf8', env: { ...process.env, STORE_MODULE: storeModule } });
    if (seed.status !== 0) throw new Error(`seeding failed: ${seed.stderr}`);
    // Seeded without the audit log: accept the store as it is, as an admin restoring one would.
    const accepted = spawnSync(process.execPath, [path.join(root, 'bin/provkey'), 'audit', 'accept-store', 'default', '--yes'], { cwd: dir, encoding: 'utf8' });
    if (accepted.status !== 0) throw new Error(`accept-store failed: ${accepted.stderr}`);
    console.log(`\nCLI at ${n} keys (wall ms, peak RSS from /usr/bin/time when available)`);
    for (const args of [['status', '--json'], ['rotate', '--due', '--json']]) {
      const start = process.hrtime.bigint();
      const timeBin = '/usr/bin/time';
      const useTime = spawnSync('test', ['-x', timeBin]).status === 0;
      const run = useTime
        ? spawnSync(timeBin, ['-f', '%M', process.execPath, path.join(root, 'bin/provkey'), ...args], { cwd: dir, encoding: 'utf8', maxBuffer: 1 << 28 })
        : spawnSync(process.execPath, [path.join(root, 'bin/provkey'), ...args], { cwd: dir, encoding: 'utf8', maxBuffer: 1 << 28 });
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      const rssKb = useTime ? Number(run.stderr.trim().split('\n').at(-1)) : NaN;
      console.log(`provkey ${args.join(' ').padEnd(22)} exit ${run.status}  ${ms.toFixed(0).padStart(7)} ms  ${Number.isFinite(rssKb) ? `${(rssKb / 1024).toFixed(0)} MB` : ''}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function seedScript(n: number): string {
  return `
const { createFileStore } = await import(process.env.STORE_MODULE);
const store = await createFileStore('default', { type: 'file', path: '.provkey/store.enc', keyFile: '.provkey/store.key' }, { configDir: process.cwd(), env: {}, resolveSecret: async () => '', debug: () => {} });
const at = new Date().toISOString();
for (let i = 0; i < ${n}; i++) {
  await store.addVersion('app-' + i, undefined, 'bench-secret-' + i + '-' + 'x'.repeat(40), { label: 'current', fingerprint: 'sha256:' + i.toString(16), createdAt: at, labelledAt: at, origin: 'generated' }, { lastRotatedAt: at });
}
await store.close();
`;
}
