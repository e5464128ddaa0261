/**
 * Scale benchmark (`npm run bench:scale`): the "Targets" table of issue 8, measured side by side
 * in one run on this machine against the real servers of the test harness (the SCIMMY-based SCIM
 * app, OpenBao), with the load average at the time of each figure. Numbers, not verdicts: it
 * prints whether each goal is met and asserts nothing (time-based assertions stay out of the
 * test suite). The last measured table is in docs/benchmarks.md.
 *
 *   BENCH_KEYS=1000,5000,10000  key counts for the embedded store (the first is the table's 1,000)
 *   BENCH_VAULT_KEYS=1000   key count for the OpenBao rows (0 skips them)
 *   BENCH_BUDGET_S=600      time budget per key count: past it a figure is "not measured: budget"
 *   BENCH_CONCURRENCY=4     provkey's batch concurrency (defaults.concurrency), the ceiling's too
 *   BENCH_ROUNDS=15         rounds of the start-up figures
 *   BENCH_ONLY=rotate       only the `rotate --all` rows (no start-up, status or rotate --due figures)
 *
 * The raw ceiling (test/bench/raw-ceiling.ts) replays the calls provkey made, read from the
 * servers' own logs, with the same concurrency, and is counted from the same logs afterwards.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { startOpenBao, type OpenBaoServer } from '../harness/servers/openbao.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';
import { CORES, interleaved, loadNow, measured, type Measured } from './measure.ts';
import { compareCalls, groupCalls, runCeiling, scimRequests, scimRoles, type CallGroup, type ScimLogged, type VaultLogged } from './raw-ceiling.ts';
import { BIN, seedWorkspace, type Workspace } from './seed.ts';

const sizes = (process.env.BENCH_KEYS ?? '1000,5000,10000').split(',').map(Number).filter((n) => n > 0);
const vaultKeys = Number(process.env.BENCH_VAULT_KEYS ?? 1000);
const budgetMs = Number(process.env.BENCH_BUDGET_S ?? 600) * 1000;
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 4);
const rounds = Number(process.env.BENCH_ROUNDS ?? 15);
const onlyRotate = process.env.BENCH_ONLY === 'rotate';
const ADMIN_TOKEN = `scim-admin-${randomBytes(18).toString('base64url')}`;
const root = mkdtempSync(path.join(tmpdir(), 'provkey-bench-scale-'));
const env: NodeJS.ProcessEnv = { ...process.env, SCIM_ADMIN_TOKEN: ADMIN_TOKEN, NO_COLOR: '1' };
delete env.PROVKEY_CONFIG;
delete env.PROVKEY_STATE_DIR;

interface Row {
  figure: string;
  measured: string;
  goal: string;
  met: boolean | undefined;
  load: string;
  /** A count of requests, not a time: the load does not change it. */
  counted?: boolean;
}
const rows: Row[] = [];
/** The harness's own requests to the SCIM app (state barriers, log markers), not provkey's. */
const HARNESS_PATHS = /^\/admin\/(state|health)$/;
const log = (text: string) => process.stderr.write(`[bench] ${text}\n`);
const loadText = (load: [number, number]) => `${load[0].toFixed(2)} → ${load[1].toFixed(2)}`;
const mb = (m: Measured) => (m.peakRssMb === undefined ? 'RSS n/a' : `${m.peakRssMb.toFixed(0)} MB`);
const notMeasured = (figure: string, goal: string, why: string) => rows.push({ figure, measured: `not measured: ${why}`, goal, met: undefined, load: `${loadNow().toFixed(2)}` });

interface LoggedScim {
  server: ScimServer;
  requests: ScimLogged[];
  /** Resolves once every request answered so far is in `requests` (the log trails the answers). */
  settled(): Promise<void>;
}

/** A SCIM app whose request log is kept whole here (the harness keeps only its tail). */
async function scimServer(tokens: string[]): Promise<LoggedScim> {
  const server = await startScimServer({ adminToken: ADMIN_TOKEN, log: true, reloadMs: 50 });
  const requests: ScimLogged[] = [];
  let partial = '';
  let waiting: (() => void) | undefined;
  server.child.stderr!.on('data', (chunk: string) => {
    const text = partial + chunk;
    const end = text.lastIndexOf('\n');
    partial = text.slice(end + 1);
    requests.push(...scimRequests(text.slice(0, end + 1)));
    if (waiting && requests.at(-1)?.path === '/admin/health') waiting();
  });
  const settled = async () => {
    // A marker request: its own log line comes after every earlier request's.
    const marked = new Promise<void>((resolve) => (waiting = resolve));
    // The harness unrefs the app's pipes: this keeps the bench alive until the line arrives.
    const alive = setInterval(() => {}, 1000);
    await (await fetch(new URL('/admin/health', server.url))).arrayBuffer();
    await marked;
    clearInterval(alive);
    waiting = undefined;
  };
  if (tokens.length > 0) {
    await server.setTokens(tokens);
    // A barrier on the app's own state, not a sleep: every seeded token is accepted.
    while ((await server.acceptedDigests()).length < tokens.length) await new Promise((resolve) => setImmediate(resolve));
  }
  return { server, requests, settled };
}

function provkey(workspace: Workspace, args: string[], timeoutMs = budgetMs): Promise<Measured> {
  return measured(process.execPath, [BIN, '--config', workspace.config, ...args], { cwd: workspace.dir, env, timeoutMs });
}

interface AuditedVault {
  server: OpenBaoServer;
  audited: () => VaultLogged[] | undefined;
}

/**
 * `rotate --all` on a seeded workspace and its ceiling; undefined when over budget. With
 * Vault, the ceiling runs against `vault.ceiling`: a second server seeded the same way, so it
 * starts from the state provkey found (OpenBao's cost per request grows with what it holds,
 * and provkey's run doubles that; see docs/benchmarks.md).
 */
async function rotateAllWithCeiling(label: string, workspace: Workspace, scim: LoggedScim, vault: (AuditedVault & { ceiling: AuditedVault }) | undefined, timeoutMs: number) {
  const scimMark = scim.requests.length;
  const vaultMark = vault?.audited()?.length ?? 0;
  log(`${label}: provkey rotate --all (${workspace.keys.length} keys, concurrency ${concurrency})`);
  const run = await provkey(workspace, ['--json', 'rotate', '--all'], timeoutMs);
  if (run.timedOut) return { run, timedOut: true as const };
  if (run.code !== 0) throw new Error(`${label}: rotate --all exited ${run.code}: ${run.stderr.slice(-2000)}`);
  await scim.settled();
  const roleOf = scimRoles({ adminToken: ADMIN_TOKEN, oldTokens: workspace.tokens.values() });
  const vaultCalls = vault?.audited()?.slice(vaultMark);
  const groups = groupCalls(scim.requests.slice(scimMark).filter((r) => !HARNESS_PATHS.test(r.path)), roleOf, vaultCalls ?? [], workspace.keys);
  // The ceiling on a fresh SCIM app holding the same tokens: both start from the same state.
  const fresh = await scimServer([...workspace.tokens.values()]);
  const rawVaultMark = vault?.ceiling.audited()?.length ?? 0;
  log(`${label}: raw ceiling`);
  const loadBefore = loadNow();
  const rawSeconds = await runCeiling({
    keys: workspace.keys,
    groups,
    concurrency,
    scim: { origin: new URL(fresh.server.url).origin, adminToken: ADMIN_TOKEN, oldTokens: workspace.tokens },
    ...(vault ? { vault: { address: vault.ceiling.server.addr, token: vault.ceiling.server.rootToken } } : {}),
  });
  const rawLoad: [number, number] = [loadBefore, loadNow()];
  await fresh.settled();
  const rawGroups = groupCalls(fresh.requests.filter((r) => !HARNESS_PATHS.test(r.path)), roleOf, vault?.ceiling.audited()?.slice(rawVaultMark) ?? [], workspace.keys);
  await fresh.server.stop();
  const differences = compareCalls(groups, rawGroups);
  if (differences.length > 0) log(`${label}: the ceiling's calls differ from provkey's: ${differences.join('; ')}`);
  return { run, timedOut: false as const, groups, rawSeconds, rawLoad, differences, vaultCounted: vaultCalls !== undefined };
}

const perKey = (groups: CallGroup[], server: 'scim' | 'vault', keys: number) => groups.filter((g) => g.server === server).reduce((sum, g) => sum + g.count, 0) / keys;
const describeGroups = (groups: CallGroup[], server: 'scim' | 'vault', keys: number) =>
  groups.filter((g) => g.server === server).map((g) => `${g.method} ${g.path} (${g.role}) ${(g.count / keys).toFixed(2)}`).join(', ');

async function embeddedStore(): Promise<void> {
  const perKeyMs = new Map<number, number>();
  for (const [index, count] of sizes.entries()) {
    const small = index === 0;
    const label = `${count} keys`;
    const started = Date.now();
    const scim = await scimServer([]);
    log(`${label}: seeding the embedded store`);
    const seeded = await seedWorkspace({ dir: path.join(root, `file-${count}`), count, scimUrl: scim.server.url, adminUrl: scim.server.adminUrl, concurrency, budgetMs, env });
    const rotateFigure = `\`rotate --all\`, ${count.toLocaleString('en')} SCIM keys, embedded store${small ? ' / raw ceiling' : ''}`;
    const rotateGoal = small ? '≤ 1.5×' : count >= 10_000 ? '< 60 s, peak RSS ≤ 150 MB' : '-';
    if (!seeded.workspace) {
      notMeasured(rotateFigure, rotateGoal, seeded.refused ? `provkey refuses the config of ${count} keys (${seeded.refused.replace(/\/\S*\//g, '')})` : `budget (seeding alone: ${seeded.seeded} of ${count} keys in ${seeded.seconds.toFixed(0)} s)`);
      if (small) {
        notMeasured('`status --json`, 1,000 keys', '≤ 0.5 s, ≤ 120 MB', 'budget');
        notMeasured('`rotate --due`, 1,000 keys, nothing due', '≤ 0.4 s, ≤ 120 MB', 'budget');
      }
      await scim.server.stop();
      continue;
    }
    const workspace = seeded.workspace;
    log(`${label}: seeded in ${seeded.seconds.toFixed(1)} s`);
    await scim.server.setTokens([...workspace.tokens.values()]);
    while ((await scim.server.acceptedDigests()).length < count) await new Promise((resolve) => setImmediate(resolve));

    if (small && !onlyRotate) {
      const status = await provkey(workspace, ['--json', 'status']);
      if (status.code !== 0 && !status.timedOut) throw new Error(`status --json exited ${status.code}: ${status.stderr.slice(-2000)}`);
      rows.push({ figure: `\`status --json\`, ${count.toLocaleString('en')} keys`, measured: status.timedOut ? 'not measured: budget' : `${status.seconds.toFixed(2)} s, ${mb(status)}`, goal: '≤ 0.5 s, ≤ 120 MB', met: status.timedOut ? false : status.seconds <= 0.5 && (status.peakRssMb ?? Infinity) <= 120, load: loadText(status.load) });
      const mark = scim.requests.length;
      const due = await provkey(workspace, ['--json', 'rotate', '--due']);
      if (due.code !== 0 && !due.timedOut) throw new Error(`rotate --due exited ${due.code}: ${due.stderr.slice(-2000)}`);
      await scim.settled();
      const contacted = scim.requests.slice(mark).filter((r) => !HARNESS_PATHS.test(r.path)).length;
      rows.push({ figure: `\`rotate --due\`, ${count.toLocaleString('en')} keys, nothing due`, measured: due.timedOut ? 'not measured: budget' : `${due.seconds.toFixed(2)} s, ${mb(due)}${contacted ? `, ${contacted} SCIM requests` : ''}`, goal: '≤ 0.4 s, ≤ 120 MB', met: due.timedOut ? false : due.seconds <= 0.4 && (due.peakRssMb ?? Infinity) <= 120, load: loadText(due.load) });
    }

    const remaining = budgetMs - (Date.now() - started);
    const result = await rotateAllWithCeiling(label, workspace, scim, undefined, Math.max(remaining, 1000));
    await scim.server.stop();
    if (result.timedOut) {
      notMeasured(rotateFigure, rotateGoal, `budget (killed after ${result.run.seconds.toFixed(0)} s)`);
      continue;
    }
    const { run } = result;
    perKeyMs.set(count, (run.seconds * 1000) / count);
    const ratio = run.seconds / result.rawSeconds;
    const same = result.differences.length === 0 ? 'same calls' : `calls differ: ${result.differences.length} kinds`;
    if (small) {
      rows.push({ figure: rotateFigure, measured: `${ratio.toFixed(2)}× (${run.seconds.toFixed(2)} s / ${result.rawSeconds.toFixed(2)} s, ${same}; provkey ${mb(run)})`, goal: rotateGoal, met: ratio <= 1.5, load: `${loadText(run.load)}; ceiling ${loadText(result.rawLoad)}` });
      const scimPerKey = perKey(result.groups, 'scim', count);
      rows.push({ figure: 'SCIM requests per rotated key in a batch (overlap)', measured: `${scimPerKey.toFixed(2)} (${describeGroups(result.groups, 'scim', count)})`, goal: '≤ 3', met: scimPerKey <= 3, load: loadText(run.load), counted: true });
    } else {
      rows.push({ figure: rotateFigure, measured: `${run.seconds.toFixed(1)} s, ${mb(run)} (raw ceiling ${result.rawSeconds.toFixed(2)} s, ${same})`, goal: rotateGoal, met: count >= 10_000 ? run.seconds < 60 && (run.peakRssMb ?? Infinity) <= 150 : undefined, load: loadText(run.load) });
    }
    rmSync(workspace.dir, { recursive: true, force: true });
  }
  if (sizes.length >= 2) {
    // From the first size to the largest one measured (a larger one may be over budget or refused).
    const first = sizes[0]!;
    const measuredSizes = sizes.filter((n) => perKeyMs.has(n));
    const last = measuredSizes.length >= 2 ? measuredSizes.at(-1)! : sizes.at(-1)!;
    const figure = `growth ${first.toLocaleString('en')} → ${last.toLocaleString('en')} keys (ms per key)${last !== sizes.at(-1) ? ` (${sizes.at(-1)!.toLocaleString('en')}: not measured)` : ''}`;
    if (perKeyMs.has(first) && perKeyMs.has(last) && first !== last) {
      const growth = perKeyMs.get(last)! / perKeyMs.get(first)!;
      rows.push({ figure, measured: `${growth.toFixed(2)}× (${perKeyMs.get(first)!.toFixed(1)} → ${perKeyMs.get(last)!.toFixed(1)} ms per key)`, goal: 'within 1.2× (linear)', met: growth <= 1.2, load: `${loadNow().toFixed(2)}` });
    } else notMeasured(figure, 'within 1.2× (linear)', 'budget (a size above was not measured)');
  }
}

async function openBao(): Promise<void> {
  if (vaultKeys <= 0) return;
  const figure = `\`rotate --all\`, ${vaultKeys.toLocaleString('en')} keys, OpenBao / raw ceiling`;
  const goal = '≤ 1.1×, ≤ 8 Vault requests per key';
  // The file audit device is what counts Vault requests (the harness enables it when it can).
  const start = startOpenBao as (options?: { audit?: boolean }) => Promise<OpenBaoServer & { auditedRequests?: () => VaultLogged[] }>;
  // Two servers seeded alike: provkey runs on one, the ceiling on the other, both from the
  // same state (OpenBao's cost per request grows with the entries it holds: a ceiling run on
  // the server provkey had just doubled was the slower side, docs/benchmarks.md).
  const servers: AuditedVault[] = [];
  const scim = await scimServer([]);
  try {
    const seededSides: Workspace[] = [];
    for (const side of ['provkey', 'ceiling']) {
      const server = await start({ audit: true });
      const audited = () => {
        try {
          return server.auditedRequests?.();
        } catch {
          return undefined; // a harness without the audit device
        }
      };
      servers.push({ server, audited });
      const tokenFile = path.join(root, `vault-token-${side}`);
      writeFileSync(tokenFile, `${server.rootToken}\n`, { mode: 0o600 });
      log(`OpenBao (${side}): seeding ${vaultKeys} keys`);
      const seeded = await seedWorkspace({ dir: path.join(root, `vault-${side}`), count: vaultKeys, scimUrl: scim.server.url, adminUrl: scim.server.adminUrl, vault: { address: server.addr, tokenFile }, concurrency, budgetMs, env });
      if (!seeded.workspace) return void notMeasured(figure, goal, `budget (seeding: ${seeded.seeded} keys in ${seeded.seconds.toFixed(0)} s)`);
      seededSides.push(seeded.workspace);
    }
    // The SCIM app and the ceiling's fresh one hold the tokens of provkey's side.
    const workspace = seededSides[0]!;
    await scim.server.setTokens([...workspace.tokens.values()]);
    while ((await scim.server.acceptedDigests()).length < vaultKeys) await new Promise((resolve) => setImmediate(resolve));
    const result = await rotateAllWithCeiling('OpenBao', workspace, scim, { ...servers[0]!, ceiling: servers[1]! }, budgetMs);
    if (result.timedOut) return void notMeasured(figure, goal, `budget (killed after ${result.run.seconds.toFixed(0)} s)`);
    if (!result.vaultCounted) {
      // Without the audit device the ceiling would make the SCIM calls only: no fair ratio.
      rows.push({ figure, measured: `provkey ${result.run.seconds.toFixed(2)} s, ${mb(result.run)}; ratio not measured: this harness's OpenBao has no audit device, so neither the Vault requests nor the ceiling's calls can be counted`, goal, met: undefined, load: loadText(result.run.load) });
      return;
    }
    const ratio = result.run.seconds / result.rawSeconds;
    const vaultPerKey = result.vaultCounted ? perKey(result.groups, 'vault', vaultKeys) : undefined;
    const same = result.differences.length === 0 ? 'same calls' : `calls differ: ${result.differences.length} kinds`;
    rows.push({
      figure,
      measured: `${ratio.toFixed(2)}× (${result.run.seconds.toFixed(2)} s / ${result.rawSeconds.toFixed(2)} s, ${same}); ${vaultPerKey === undefined ? 'Vault requests not counted (no audit device in this harness)' : `${vaultPerKey.toFixed(2)} Vault requests per key (${Math.round(vaultPerKey * vaultKeys)} in all: ${describeGroups(result.groups, 'vault', vaultKeys)})`}`,
      goal,
      met: ratio <= 1.1 && vaultPerKey !== undefined && vaultPerKey <= 8,
      load: `${loadText(result.run.load)}; ceiling ${loadText(result.rawLoad)}`,
    });
  } finally {
    await scim.server.stop();
    for (const { server } of servers) await server.stop();
  }
}

async function startUp(): Promise<void> {
  const scimUrl = 'http://127.0.0.1:9/scim/v2';
  const seeded = await seedWorkspace({ dir: path.join(root, 'startup'), count: 1, scimUrl, adminUrl: 'http://127.0.0.1:9/admin/tokens', concurrency, budgetMs, env });
  const workspace = seeded.workspace!;
  const figures = interleaved(
    {
      'node -e 0': { command: process.execPath, args: ['-e', '0'] },
      '--help': { command: process.execPath, args: [BIN, '--help'] },
      status: { command: process.execPath, args: [BIN, '--config', workspace.config, 'status'] },
    },
    { rounds, cwd: workspace.dir, env },
  );
  const base = figures.wall.get('node -e 0')!;
  const cpuBase = figures.cpu.get('node -e 0')!;
  for (const [name, figure, goal] of [['--help', '`provkey --help` / `node -e 0`', 1.5], ['status', '`provkey status` (1 key) / `node -e 0`', 2]] as const) {
    const ratio = figures.wall.get(name)! / base;
    rows.push({ figure, measured: `${ratio.toFixed(2)}× (${figures.wall.get(name)!.toFixed(1)} ms / ${base.toFixed(1)} ms wall; CPU ${(figures.cpu.get(name)! / cpuBase).toFixed(2)}×)`, goal: `≤ ${goal}×`, met: ratio <= goal, load: loadText(figures.load) });
  }
}

const begun = new Date();
try {
  if (!onlyRotate) await startUp();
  await embeddedStore();
  await openBao();
} finally {
  rmSync(root, { recursive: true, force: true });
}
const order = [...sizes.map((n) => `\`rotate --all\`, ${n.toLocaleString('en')} SCIM`), 'growth', '`status', '`rotate --due', '`rotate --all`, ' + vaultKeys.toLocaleString('en') + ' keys, OpenBao', 'SCIM', '`provkey --help', '`provkey status'];
rows.sort((a, b) => rank(a) - rank(b));
function rank(row: Row): number {
  const i = order.findIndex((prefix) => row.figure.startsWith(prefix));
  return i < 0 ? order.length : i;
}
console.log(`provkey scale benchmark, ${begun.toISOString().slice(0, 16).replace('T', ' ')} UTC: ${cpus()[0]?.model ?? 'unknown CPU'}, ${CORES} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GB, Node ${process.versions.node}; concurrency ${concurrency}; load = 1-minute load average at start → end of the figure\n`);
console.log('| figure | measured | goal | met | load |');
console.log('| --- | --- | --- | --- | --- |');
// Above one runnable process per core, time is shared: such a figure says little about provkey.
const busy = (row: Row) => !row.counted && Math.max(...(row.load.match(/\d+\.\d+/g) ?? ['0']).map(Number)) > CORES;
for (const row of rows) console.log(`| ${row.figure} | ${row.measured} | ${row.goal} | ${row.met === undefined ? '-' : row.met ? 'yes' : 'no'}${busy(row) && row.met !== undefined ? ' (load > cores: unreliable)' : ''} | ${row.load} |`);
