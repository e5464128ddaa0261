import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { KeyResult, Outcome } from '../engine/result.js';
import type { KeyStatus } from '../engine/status.js';

/**
 * Prometheus text exposition (format 0.0.4) of provkey's state, for node_exporter's textfile
 * collector: one file, rewritten whole and atomically by every run that asks for it.
 * Per key: from the store metadata (status data). Per run: from the run's results. Series a
 * run does not know (another command's last run, a key's last rotation when this run did not
 * rotate it) are carried forward from the file being replaced, so `status` after `rotate`
 * does not erase what the rotation reported.
 */

export interface MetricsInput {
  now: Date;
  command: string;
  exitCode: number;
  runMs: number;
  /** Every configured key's status (store metadata only). */
  statuses: KeyStatus[];
  /** This run's results (rotations, revokes, tests, drills). */
  results: KeyResult[];
  /** The file this one replaces, for carrying series forward. */
  previous?: string;
}

type Family = { help: string; labels: readonly string[] };

const FAMILIES = {
  provkey_key_info: { help: 'A configured key (value 1); state is ok, empty, rotating, lockout, attention or error.', labels: ['key', 'store', 'target', 'state'] },
  provkey_key_age_seconds: { help: 'Age of the current version.', labels: ['key'] },
  provkey_key_next_rotation_timestamp_seconds: { help: 'When the key is next due for rotation (Unix time).', labels: ['key'] },
  provkey_key_due: { help: '1 when the key is due for rotation now.', labels: ['key'] },
  provkey_key_previous_versions: { help: 'Previous versions still accepted in their grace period.', labels: ['key'] },
  provkey_key_last_test_ok: { help: '1 when the last connection test passed.', labels: ['key'] },
  provkey_key_last_test_timestamp_seconds: { help: 'When the last connection test ran (Unix time).', labels: ['key'] },
  provkey_key_lockout: { help: '1 when neither version works and rotation is refused until a passing test.', labels: ['key'] },
  provkey_key_attention: { help: '1 when the key needs a human (e.g. a revoked version still accepted).', labels: ['key'] },
  provkey_key_store_error: { help: '1 when the key\'s store could not be read.', labels: ['key'] },
  provkey_key_last_rotation_ok: { help: '1 when the last rotation (or drill) succeeded.', labels: ['key'] },
  provkey_key_last_rotation_timestamp_seconds: { help: 'When the last rotation (or drill) ended (Unix time).', labels: ['key'] },
  provkey_key_last_rotation_duration_seconds: { help: 'How long the last rotation (or drill) took.', labels: ['key'] },
  provkey_key_last_rotation_outcome: { help: 'Outcome of the last rotation (or drill), as a label (value 1).', labels: ['key', 'outcome'] },
  provkey_run_results: { help: 'Keys of the last run of a command, by outcome.', labels: ['command', 'outcome'] },
  provkey_run_exit_code: { help: 'Exit code of the last run of a command.', labels: ['command'] },
  provkey_run_timestamp_seconds: { help: 'When the last run of a command ended (Unix time).', labels: ['command'] },
  provkey_run_duration_seconds: { help: 'How long the last run of a command took.', labels: ['command'] },
} as const satisfies Record<string, Family>;
type FamilyName = keyof typeof FAMILIES;

/** Every outcome gets a series (0 when absent), so `provkey_run_results{outcome="failed"} > 0` alerts never see a gap. */
const OUTCOMES = Object.keys({
  added: 1, imported: 1, rotated: 1, resumed: 1, revoked: 1, tested: 1, skipped: 1, rolled_back: 1, failed: 1, lockout: 1, planned: 1,
} satisfies Record<Outcome, 1>) as Outcome[];

/** Outcomes that end a rotation attempt (a skipped or planned key did not rotate). */
const ROTATION_ENDS: ReadonlySet<Outcome> = new Set(['rotated', 'resumed', 'failed', 'rolled_back', 'lockout']);
const ROTATIONS: ReadonlySet<string> = new Set(['rotate', 'drill']);

const LAST_ROTATION: readonly FamilyName[] = ['provkey_key_last_rotation_ok', 'provkey_key_last_rotation_timestamp_seconds', 'provkey_key_last_rotation_duration_seconds', 'provkey_key_last_rotation_outcome'];

/** Samples by family, each by its rendered label set. */
type Samples = Map<FamilyName, Map<string, { labels: Record<string, string>; value: number }>>;

export function renderMetrics(input: MetricsInput): string {
  const samples: Samples = new Map();
  const set = (family: FamilyName, labels: Record<string, string>, value: number) => {
    let series = samples.get(family);
    if (!series) samples.set(family, (series = new Map()));
    series.set(labelText(family, labels), { labels, value });
  };
  const configured = new Set(input.statuses.map((s) => s.name));
  for (const carried of parseOwnSeries(input.previous ?? '')) {
    const keep = carried.family.startsWith('provkey_run_') ? carried.labels.command !== input.command : LAST_ROTATION.includes(carried.family) && configured.has(carried.labels.key ?? '');
    if (keep) set(carried.family, carried.labels, carried.value);
  }
  const seconds = (iso: string) => Date.parse(iso) / 1000;
  for (const s of input.statuses) {
    const key = { key: s.name };
    set('provkey_key_info', { key: s.name, store: s.store, target: s.target, state: s.state }, 1);
    if (s.ageMs !== null) set('provkey_key_age_seconds', key, s.ageMs / 1000);
    if (s.nextRotationAt) set('provkey_key_next_rotation_timestamp_seconds', key, seconds(s.nextRotationAt));
    set('provkey_key_due', key, s.due ? 1 : 0);
    set('provkey_key_previous_versions', key, s.previous.length);
    if (s.lastTest) {
      set('provkey_key_last_test_ok', key, s.lastTest.ok ? 1 : 0);
      set('provkey_key_last_test_timestamp_seconds', key, seconds(s.lastTest.at));
    }
    set('provkey_key_lockout', key, s.state === 'lockout' ? 1 : 0);
    set('provkey_key_attention', key, s.state === 'attention' ? 1 : 0);
    set('provkey_key_store_error', key, s.state === 'error' ? 1 : 0);
  }
  for (const r of input.results) {
    if (!ROTATIONS.has(r.operation) || !ROTATION_ENDS.has(r.outcome)) continue;
    // This run's rotation replaces whatever was carried for the key, old outcome label included.
    for (const family of LAST_ROTATION) for (const [text, sample] of samples.get(family) ?? []) if (sample.labels.key === r.key) samples.get(family)!.delete(text);
    const key = { key: r.key };
    set('provkey_key_last_rotation_ok', key, r.ok ? 1 : 0);
    set('provkey_key_last_rotation_timestamp_seconds', key, input.now.getTime() / 1000);
    set('provkey_key_last_rotation_duration_seconds', key, r.ms / 1000);
    set('provkey_key_last_rotation_outcome', { key: r.key, outcome: r.outcome }, 1);
  }
  const command = { command: input.command };
  for (const outcome of OUTCOMES) set('provkey_run_results', { ...command, outcome }, input.results.filter((r) => r.outcome === outcome).length);
  set('provkey_run_exit_code', command, input.exitCode);
  set('provkey_run_timestamp_seconds', command, input.now.getTime() / 1000);
  set('provkey_run_duration_seconds', command, input.runMs / 1000);

  const lines: string[] = [];
  for (const family of Object.keys(FAMILIES) as FamilyName[]) {
    const series = samples.get(family);
    if (!series || series.size === 0) continue;
    lines.push(`# HELP ${family} ${FAMILIES[family].help}`, `# TYPE ${family} gauge`);
    for (const [text, { value }] of [...series].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) lines.push(`${family}${text} ${formatValue(value)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Labels in the family's declared order, values escaped as the text format requires. */
function labelText(family: FamilyName, labels: Record<string, string>): string {
  const parts = FAMILIES[family].labels.filter((name) => labels[name] !== undefined).map((name) => `${name}="${escapeLabel(labels[name]!)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function escapeLabel(value: string): string {
  return value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? '+Inf' : '-Inf';
  return Number.isInteger(value) ? String(value) : String(Math.round(value * 1000) / 1000);
}

/** Reads back series this module wrote (nothing else is trusted: unknown lines are dropped). */
function parseOwnSeries(text: string): { family: FamilyName; labels: Record<string, string>; value: number }[] {
  const out: { family: FamilyName; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    const match = /^(provkey_[a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || !(match[1]! in FAMILIES)) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]!] = pair[2]!.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));
    }
    const value = Number(match[3]);
    if (!Number.isNaN(value)) out.push({ family: match[1] as FamilyName, labels, value });
  }
  return out;
}

/**
 * Writes the file atomically: a temp file in the same directory, flushed, then renamed over
 * the old one, so the collector never reads half a file (and never a `.prom` temp: it ignores
 * other extensions).
 */
export async function writeMetricsFile(file: string, input: Omit<MetricsInput, 'previous'>): Promise<void> {
  const previous = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '';
    throw error;
  });
  const text = renderMetrics({ ...input, previous });
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', 0o644);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, file);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
}
