import { NeedsHumanError } from '../core/errors.js';
import { readStateFile } from '../io/safe-file.js';
import { readAnchor } from './audit-log.js';
import { GENESIS_HASH, generationsObject, generationsOf, lineIsAuthentic, parseLine, type AuditKey } from './chain.js';
import { generationProblem, type StoreGeneration } from './generation.js';

export interface AuditVerifyOptions {
  /** The chain key; without it keyed lines are walked but their MACs are not checked. */
  key?: AuditKey;
  /** Why there is no key (e.g. "the default store is not an embedded file store"), for `notChecked`. */
  keyUnavailable?: string;
  /** Stores to cross-check against the log's announced generations. */
  stores?: StoreGeneration[];
  /** The anchor file from the config, if any. */
  anchor?: string;
}

/**
 * What `audit verify` found, precisely enough that the CLI never reports an unchecked log
 * as intact: `ok` is "no problem found", `checked` is "ok, and every line was authenticated
 * (legacy lines by their hash, keyed lines by their MAC) and the log exists". Only `checked`
 * deserves a ✔; `notChecked` says what was left out and why.
 */
export interface AuditVerification {
  file: string;
  exists: boolean;
  ok: boolean;
  checked: boolean;
  notChecked: string[];
  entries: number;
  /** Unkeyed lines at the start (written before the log was keyed). Sealed by the first keyed line, if any. */
  legacyEntries: number;
  keyedEntries: number;
  /** The last line's link (MAC or hash). */
  head: string | undefined;
  /** Generation announced per store at the last line. */
  generations: Record<string, number>;
  /** The first line that breaks the chain, and why. */
  line?: number;
  problem?: string;
  /** Stores that disagree with the log (rollback, deleted store, cut log). */
  storeProblems: { store: string; problem: string }[];
  /** Stores compared with the log. */
  storesChecked: string[];
  /**
   * Writes the log announced that the store does not hold (store at the announced generation
   * minus one): a crash between announcing and committing, or the newest write undone by
   * putting back the copy before it; the two cannot be told apart (docs/security.md).
   */
  uncommittedWrites: { store: string; generation: number }[];
  anchor?: { file: string; seq: number | undefined; problem?: string };
}

/** Walks the chain from the first line; reports the first line that breaks it, then the stores and the anchor. */
export async function verifyAuditLog(file: string, options: AuditVerifyOptions = {}): Promise<AuditVerification> {
  const result: AuditVerification = {
    file,
    exists: false,
    ok: true,
    checked: false,
    notChecked: [],
    entries: 0,
    legacyEntries: 0,
    keyedEntries: 0,
    head: undefined,
    generations: {},
    storeProblems: [],
    storesChecked: [],
    uncommittedWrites: [],
  };
  const text = await readStateFile(file, 'audit log');
  const generations = new Map<string, number>();
  const links: string[] = [];
  if (text === undefined) {
    result.notChecked.push('the log does not exist');
  } else {
    result.exists = true;
    walk(text, options, result, generations, links);
  }
  result.generations = generationsObject(generations);
  for (const store of options.stores ?? []) {
    result.storesChecked.push(store.store);
    // A broken chain's generations cannot be trusted; the chain problem is reported instead.
    if (result.problem !== undefined) continue;
    const announced = generations.get(store.store) ?? 0;
    const problem = generationProblem(store, announced, file);
    if (problem) result.storeProblems.push({ store: store.store, problem });
    else if (store.generation === announced - 1) result.uncommittedWrites.push({ store: store.store, generation: announced });
  }
  if (options.anchor) result.anchor = await checkAnchor(options.anchor, links);
  if (result.anchor && result.anchor.seq === undefined && result.exists) result.notChecked.push(`the anchor ${options.anchor} does not exist yet`);
  result.ok = result.problem === undefined && result.storeProblems.length === 0 && result.anchor?.problem === undefined;
  result.checked = result.ok && result.exists && result.notChecked.length === 0;
  return result;
}

function walk(text: string, options: AuditVerifyOptions, result: AuditVerification, generations: Map<string, number>, links: string[]): void {
  const fail = (line: number, problem: string) => {
    result.line = line;
    result.problem = problem;
  };
  if (text.length > 0 && !text.endsWith('\n')) {
    fail(text.split('\n').length, 'last line is truncated');
    return;
  }
  const lines = text.split('\n').slice(0, -1);
  result.entries = lines.length;
  let prev = GENESIS_HASH;
  let keyedSeen = false;
  let unverifiedMacs = 0;
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    const parsed = parseLine(lines[i]!);
    if (!parsed) return fail(n, 'not a valid audit line (bad JSON, or its hash/MAC field is missing or malformed)');
    const { entry } = parsed;
    if (entry.seq !== n) return fail(n, `sequence ${String(entry.seq)} where ${n} was expected (a line was removed or inserted)`);
    if (entry.prev !== prev) return fail(n, 'does not chain to the line before it');
    if (parsed.keyed) {
      keyedSeen = true;
      result.keyedEntries++;
      const authentic = lineIsAuthentic(parsed, options.key);
      if (authentic === 'no_key') {
        if (options.key) return fail(n, `written with a different key (key id ${String(entry.kid)}, this store's is ${options.key.id}): not this store's log, or forged`);
        unverifiedMacs++;
      } else if (!authentic) {
        return fail(n, 'content does not match its MAC (edited, or written without the key)');
      }
    } else {
      if (keyedSeen) return fail(n, 'an unkeyed line after keyed lines (anyone can compute its hash: forged)');
      if (options.key && 'generations' in entry) return fail(n, 'an unkeyed line carrying store generations although the log has a key (anyone can compute its hash: forged)');
      result.legacyEntries++;
      if (lineIsAuthentic(parsed, undefined) !== true) return fail(n, 'content does not match its hash (edited)');
    }
    // Only a person's `store.accepted` line (keyed, when there is a key) may take a generation back.
    const accepted = entry.event === 'store.accepted' && (parsed.keyed || !options.key) ? (entry.detail as { store?: unknown } | undefined)?.store : undefined;
    for (const [store, generation] of generationsOf(entry)) {
      const before = generations.get(store) ?? 0;
      if (generation < before && store !== accepted) return fail(n, `store "${store}" goes back from generation ${before} to ${generation} (a spliced or forged line)`);
      generations.set(store, generation);
    }
    prev = parsed.link;
    links.push(parsed.link);
  }
  result.head = lines.length ? prev : undefined;
  if (unverifiedMacs > 0) {
    result.notChecked.push(`${unverifiedMacs} keyed line(s) not authenticated: ${options.keyUnavailable ?? 'the chain key is not available'}`);
  }
}

async function checkAnchor(anchorFile: string, links: string[]): Promise<NonNullable<AuditVerification['anchor']>> {
  try {
    const anchor = await readAnchor(anchorFile);
    if (!anchor) return { file: anchorFile, seq: undefined };
    if (anchor.seq > links.length) {
      return { file: anchorFile, seq: anchor.seq, problem: `the anchor records line ${anchor.seq} but the log has ${links.length}: lines were cut from its end, or an older log was put back` };
    }
    if (anchor.seq > 0 && links[anchor.seq - 1] !== anchor.link) {
      return { file: anchorFile, seq: anchor.seq, problem: `line ${anchor.seq} is not the line the anchor recorded: the log was replaced or rewritten` };
    }
    return { file: anchorFile, seq: anchor.seq };
  } catch (error) {
    if (error instanceof NeedsHumanError) return { file: anchorFile, seq: undefined, problem: error.message };
    throw error;
  }
}
