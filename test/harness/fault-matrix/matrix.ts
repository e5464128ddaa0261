// The exhaustive fault simulation: for one operation × store × target, record the side-effect
// boundaries of a clean run, then for every boundary and every fault that can happen there run
// the operation with that fault (in-process, through the engine's seam), then one normal run in
// a fresh session, and check the invariants against the REAL servers.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../../src/config/load.ts';
import type { KeyRecord } from '../../../src/core/model.ts';
import { applicableFaults, describeCall, installFaultHook, type EffectCall, type Fault } from '../../../src/engine/seam.ts';
import { Session } from '../../../src/engine/session.ts';
import { expectNoSecrets, type CapturedOutput } from '../cli.ts';
import type { ConsumerFixture, StoreFixture, TargetFixture } from './adapters.ts';
import { runInProcess, type InProcessRun } from './in-process-cli.ts';

export const KEY = 'fm-key';

export interface MatrixOperation {
  name: string;
  grace: string;
  /** Normal runs that bring the key to the state the operation starts from. */
  setup: string[][];
  /** A change made to the store after setup (e.g. a grace period that has ended). */
  prepare?: (session: Session) => Promise<void>;
  /** The command run with the fault, and again (fault removed) to converge. */
  run: string[];
}

/** A grace period that ended a minute ago: `rotate --due` must revoke that version. */
async function endGracePeriods(session: Session): Promise<void> {
  const store = await session.storeFor(session.key(KEY));
  const record = (await store.read(KEY))!;
  const past = new Date(Date.now() - 60_000).toISOString();
  await store.update(KEY, record.revision, { versions: record.versions.map((v) => (v.label === 'previous' ? { ...v, graceUntil: past } : v)), state: record.state });
}

export const OPERATIONS: MatrixOperation[] = [
  { name: 'add', grace: '1h', setup: [], run: ['add', KEY] },
  { name: 'rotate (overlap)', grace: '1h', setup: [['add', KEY]], run: ['rotate', KEY] },
  { name: 'rotate (no overlap)', grace: '0', setup: [['add', KEY]], run: ['rotate', KEY] },
  // Again before the grace ends: a two-account key's set takes the grace pair's account.
  { name: 'rotate (within grace)', grace: '1h', setup: [['add', KEY], ['rotate', KEY]], run: ['rotate', KEY] },
  { name: 'revoke --previous', grace: '1h', setup: [['add', KEY], ['rotate', KEY]], run: ['--yes', 'revoke', KEY, '--previous'] },
  { name: 'drill compromise', grace: '1h', setup: [['add', KEY], ['rotate', KEY]], run: ['--yes', 'drill', 'compromise', KEY, '--rto', '10m'] },
  { name: 'migrate', grace: '1h', setup: [['add', KEY]], run: ['--yes', 'migrate', KEY, '--to', 'alt'] },
  { name: 'rotate --due (grace end)', grace: '1h', setup: [['add', KEY], ['rotate', KEY]], prepare: endGracePeriods, run: ['rotate', '--due'] },
];

export interface MatrixCase {
  operation: string;
  store: string;
  target: string;
  /** The consumer the key has (docs/consumers.md), or none. */
  consumer?: string;
  boundary: number;
  call: string;
  fault: Fault;
}

export function describeCase(c: MatrixCase, seed: string): string {
  return `operation="${c.operation}" store=${c.store} target=${c.target}${c.consumer ? ` consumer=${c.consumer}` : ''} boundary=#${c.boundary} ${c.call} fault=${c.fault} seed=${seed} (replay: PROVKEY_FAULT_SEED=${seed} PROVKEY_FAULT_ONLY="${c.operation}|${c.store}|${c.target}|${c.boundary}|${c.fault}"${c.consumer ? ` PROVKEY_FAULT_CONSUMERS=${c.consumer}` : ''})`;
}

let caseCounter = 0;

export class CaseFixture {
  readonly dir: string;
  readonly config: string;
  readonly outputs: CapturedOutput[] = [];
  readonly secrets = new Set<string>();
  readonly id: string;

  constructor(
    readonly operation: MatrixOperation,
    readonly store: StoreFixture,
    readonly target: TargetFixture,
    readonly consumer?: ConsumerFixture,
  ) {
    const id = `${process.pid}-${++caseCounter}`;
    this.id = id;
    this.dir = mkdtempSync(path.join(tmpdir(), 'provkey-fm-'));
    this.config = path.join(this.dir, 'provkey.yaml');
    writeFileSync(
      this.config,
      [
        'stores:',
        `  main: ${store.storeConfig(id, 'main')}`,
        `  alt: ${store.storeConfig(id, 'alt')}`,
        'keys:',
        `  ${KEY}:`,
        '    store: main',
        '    format: { type: password, length: 24 }',
        `    rotation: { interval: 30d, grace: ${operation.grace} }`,
        '    target:',
        ...target.targetConfig().map((line) => `      ${line}`),
        ...(consumer ? ['    consumers:', ...consumer.consumerConfig(id).map((line, i) => `${i === 0 ? '      - ' : '        '}${line}`)] : []),
        '',
      ].join('\n'),
    );
    for (const s of [...store.secrets, ...target.secrets, ...(consumer?.secrets ?? [])]) this.secrets.add(s);
  }

  async cli(args: string[]): Promise<InProcessRun> {
    const run = await runInProcess(['--config', this.config, ...args]);
    this.outputs.push({ where: `stdout of provkey ${args.join(' ')}`, text: run.stdout }, { where: `stderr of provkey ${args.join(' ')}`, text: run.stderr });
    return run;
  }

  /** A session outside the fault hook, to look at the store as it is now (config re-read: migrate moves keys). */
  async inspect<T>(fn: (session: Session) => Promise<T>): Promise<T> {
    const session = new Session({ config: await loadConfig(this.config, { mustExist: true }), faultHook: () => undefined });
    try {
      return await fn(session);
    } finally {
      await session.close();
    }
  }

  async record(): Promise<{ record: KeyRecord | undefined; storeName: string; other: KeyRecord | undefined }> {
    return this.inspect(async (session) => {
      const key = session.key(KEY);
      const store = await session.storeFor(key);
      const otherName = key.storeName === 'main' ? 'alt' : 'main';
      return { record: await store.read(KEY), storeName: key.storeName, other: await (await session.storeNamed(otherName)).read(KEY) };
    });
  }

  /** Values of the live versions (current, previous), learned for the secret scan. */
  async liveValues(record: KeyRecord): Promise<{ current?: string; live: string[] }> {
    return this.inspect(async (session) => {
      const store = await session.storeFor(session.key(KEY));
      const live: string[] = [];
      let current: string | undefined;
      for (const v of record.versions) {
        if (v.label !== 'current' && v.label !== 'previous' && v.label !== 'pending') continue;
        const value = await store.readSecret(KEY, v.id).catch(() => undefined);
        if (value === undefined) continue;
        this.secrets.add(value);
        if (v.label === 'pending') continue;
        live.push(value);
        if (v.label === 'current') current = value;
      }
      return { ...(current ? { current } : {}), live };
    });
  }

  scanSecrets(): void {
    const audit = readFileSync(path.join(this.dir, '.provkey', 'audit.jsonl'), 'utf8');
    expectNoSecrets([...this.outputs, { where: 'the audit log', text: audit }], [...this.secrets]);
  }
}

/** A hook that records calls, and injects `fault` at call `at` (an outage then lasts: every later call to that adapter fails alike). */
export class FaultPlan {
  readonly calls: EffectCall[] = [];
  killed = false;
  private outage: { boundary: string; adapter: string; fault: Fault } | undefined;

  constructor(private readonly at?: number, private readonly fault?: Fault) {}

  readonly hook = (call: EffectCall): Fault | undefined => {
    this.calls.push(call);
    if (this.outage && call.boundary === this.outage.boundary && call.adapter === this.outage.adapter && applicableFaults(call).includes(this.outage.fault)) return this.outage.fault;
    if (call.index !== this.at || !this.fault) return undefined;
    if (this.fault === 'kill-before' || this.fault === 'kill-after') this.killed = true;
    else if (this.fault !== 'rejection') this.outage = { boundary: call.boundary, adapter: call.adapter, fault: this.fault };
    return this.fault;
  };
}

export async function withHook<T>(plan: FaultPlan, fn: () => Promise<T>): Promise<T> {
  installFaultHook(plan.hook);
  try {
    return await fn();
  } finally {
    installFaultHook(undefined);
  }
}

/** Sets up a fresh key for the operation (normal runs), returning a fixture ready for the faulted run. */
export async function freshCase(operation: MatrixOperation, store: StoreFixture, target: TargetFixture, consumer?: ConsumerFixture): Promise<CaseFixture> {
  const fixture = new CaseFixture(operation, store, target, consumer);
  for (const args of operation.setup) {
    const run = await fixture.cli(args);
    if (run.code !== 0) throw new Error(`set-up "provkey ${args.join(' ')}" exited ${run.code}: ${run.stderr || run.stdout}`);
  }
  if (operation.prepare) await fixture.inspect(operation.prepare);
  return fixture;
}

/** The clean run's boundaries, and the cases (boundary × applicable fault) they give. */
export async function enumerateCases(operation: MatrixOperation, storeName: string, targetName: string, store: StoreFixture, target: TargetFixture, consumer?: { name: string; fixture: ConsumerFixture }): Promise<MatrixCase[]> {
  const fixture = await freshCase(operation, store, target, consumer?.fixture);
  const plan = new FaultPlan();
  const clean = await withHook(plan, () => fixture.cli(operation.run));
  if (clean.code !== 0) throw new Error(`the clean run of "${operation.name}" exited ${clean.code}: ${clean.stderr || clean.stdout}`);
  return plan.calls.flatMap((call) =>
    applicableFaults(call).map((fault) => ({ operation: operation.name, store: storeName, target: targetName, ...(consumer ? { consumer: consumer.name } : {}), boundary: call.index, call: describeCall(call), fault })),
  );
}

/** Exit codes the faulted run may end with (docs/cli.md): an outage is 5 or absorbed, never "failed" or a lockout. */
function allowedFaultedCodes(fault: Fault): number[] {
  switch (fault) {
    case 'rejection':
      return [0, 1, 6];
    case 'kill-before':
    case 'kill-after':
      return [];
    default:
      return [0, 5];
  }
}

/** Runs one case; returns the invariant violations (empty when it converged cleanly). */
export async function runCase(c: MatrixCase, operation: MatrixOperation, store: StoreFixture, target: TargetFixture, consumer?: ConsumerFixture): Promise<string[]> {
  const violations: string[] = [];
  const fixture = await freshCase(operation, store, target, consumer);
  const before = await target.acceptedSnapshot();
  const mark = await target.mark();

  const plan = new FaultPlan(c.boundary, c.fault);
  const faulted = await withHook(plan, () => fixture.cli(operation.run));
  if (!plan.killed && !allowedFaultedCodes(c.fault).includes(faulted.code ?? -1)) {
    violations.push(`the faulted run exited ${faulted.code} (allowed: ${allowedFaultedCodes(c.fault).join(', ')}): ${oneLine(faulted.stderr || faulted.stdout)}`);
  }
  const failedInFault = await target.failedSince(mark);
  if (failedInFault > target.failedBindBudgetPerRun) violations.push(`${failedInFault} failed binds in the faulted run (budget ${target.failedBindBudgetPerRun} per run)`);
  const markBetween = await target.mark();
  const afterFault = await fixture.record();
  if (afterFault.record?.state.lockout) violations.push(`a lockout was recorded without positive evidence: ${afterFault.record.state.lockout.detail}`);
  if (afterFault.record?.state.claim && !afterFault.record.versions.some((v) => v.label === 'current')) {
    // Nothing usable until the next run converges it: `status` must not say all is well.
    const status = await fixture.cli(['status', KEY]);
    if (status.code === 0) violations.push('status exits 0 while the key has no current version and an interrupted run waits');
  }

  const again = await fixture.cli(operation.run);
  if (process.env.PROVKEY_FAULT_DEBUG) {
    console.log(`faulted run (${faulted.code}):\n${plan.calls.map((call) => `  #${call.index} ${describeCall(call)}${call.index === c.boundary ? `  <-- ${c.fault}` : ''}`).join('\n')}\n${faulted.stdout}\n${faulted.stderr}\nconverging run (${again.code}):\n${again.stdout}\n${again.stderr}`);
  }
  const alreadyAdded = operation.name === 'add' && again.code === 2 && /already has a current version/.test(again.stderr);
  if (again.code !== 0 && !alreadyAdded) violations.push(`the converging run exited ${again.code}: ${oneLine(again.stderr || again.stdout)}`);

  const { record, other, storeName } = await fixture.record();
  if (!record) {
    violations.push(`the key is gone from store "${storeName}"`);
    return violations;
  }
  const labels = record.versions.map((v) => `${v.id}:${v.label}`).join(' ');
  const currents = record.versions.filter((v) => v.label === 'current');
  if (currents.length !== 1) violations.push(`${currents.length} current versions (${labels})`);
  if (record.versions.some((v) => v.label === 'pending')) violations.push(`a version is left pending (${labels})`);
  if (record.state.claim) violations.push(`a claim is left (${record.state.claim.operation} at ${record.state.claim.step})`);
  if (record.state.lockout) violations.push(`lockout recorded: ${record.state.lockout.detail}`);
  if (record.state.attention) violations.push(`attention recorded: ${record.state.attention.detail}`);
  if (other) violations.push(`store "${storeName === 'main' ? 'alt' : 'main'}" still holds a copy of the key`);

  const { current, live } = await fixture.liveValues(record);
  if (!current) violations.push('the current version has no readable value');
  else if (!(await target.accepts(current))) violations.push('the target does not accept the current version');
  else if (consumer && !(await consumer.holds(fixture.id, current))) violations.push(`consumer ${c.consumer} does not hold the current version`);
  const unknown = await target.unknownAccepted(before, live);
  if (unknown.length) violations.push(`the target accepts ${unknown.length} credential(s) the store does not know as live`);
  if (await target.locked()) violations.push('the account is locked by the directory');
  // A write probe interrupted in the faulted run (a kill, an outage between add and delete)
  // leaves its throw-away entry; the converging run's probe must have removed it.
  if (current && target.probeLeftovers) {
    const left = await target.probeLeftovers(current);
    if (left.length) violations.push(`${left.length} write-probe leftover(s) on the target after the converging run: ${left.join('; ')}`);
  }
  const failed = await target.failedSince(markBetween);
  if (failed > target.failedBindBudgetPerRun) violations.push(`${failed} failed binds in the converging run (budget ${target.failedBindBudgetPerRun} per run)`);

  const status = await fixture.cli(['--json', 'status', KEY]);
  const tested = await fixture.cli(['test', KEY]);
  const audit = await fixture.cli(['audit', 'verify']);
  if (status.code !== 0 || tested.code !== 0 || audit.code !== 0) {
    violations.push(`status/test/audit verify disagree: exit ${status.code}/${tested.code}/${audit.code}: ${oneLine(status.stdout)} ${oneLine(tested.stderr || tested.stdout)} ${oneLine(audit.stderr || audit.stdout)}`);
  }
  try {
    fixture.scanSecrets();
  } catch (error) {
    violations.push((error as Error).message);
  }
  return violations;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim().slice(0, 400);
}

/** A small seeded generator (mulberry32), so a sample can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
