import type { BigIntStats } from 'node:fs';
import { lstat, mkdir, type FileHandle } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import path from 'node:path';
import { ExitCode, isProvkeyError, NeedsHumanError } from '../core/errors.js';
import { redact } from '../core/redact.js';
import { writeFileAtomic } from '../io/atomic-write.js';
import { defaultLockOptions, withFileLock } from '../io/file-lock.js';
import { openStateFile, readStateFile } from '../io/safe-file.js';
import { removeStaleTemps } from '../io/stale-temp.js';
import { GENESIS_HASH, generationsObject, generationsOf, legacyHash, lineIsAuthentic, parseLine, sealLine, type AuditKey, type ParsedLine } from './chain.js';
import type { StoreJournal } from './generation.js';

/**
 * Append-only, chained audit log (JSON Lines). Each line carries the link (MAC, or legacy
 * hash) of the one before it, so any edit, insertion, deletion or reordering breaks the chain
 * and `provkey audit verify` finds the first line where it breaks; lines are keyed with a MAC
 * derived from the embedded store's key (see chain.ts), and carry the store generations the
 * log has announced (see generation.ts), which is how a cut log or a put-back store is found.
 * An optional anchor (a file on another volume) holds the head, so cutting the log AND
 * putting back an older store together is found too. Entries hold fingerprints only.
 */

export { GENESIS_HASH } from './chain.js';

export interface AuditEvent {
  event: string;
  key?: string;
  outcome?: 'ok' | 'failed' | 'rolled_back' | 'lockout' | 'skipped' | 'resumed';
  fingerprint?: string;
  versionId?: string;
  detail?: Record<string, unknown>;
}

export interface AuditEntry extends AuditEvent {
  seq: number;
  at: string;
  actor: { user: string; host: string; pid: number };
  /** Generation announced per store, as of this line (absent on lines written before generations). */
  generations?: Record<string, number>;
  prev: string;
  /** Legacy lines. */
  hash?: string;
  /** Keyed lines: the chain key's id and the line's MAC. */
  kid?: string;
  mac?: string;
}

/** The legacy (unkeyed) hash of a line; kept for tests and tools that check old logs. */
export function hashEntry(entry: Omit<AuditEntry, 'hash'>): string {
  return legacyHash(entry);
}

export interface AuditLogOptions {
  /**
   * The chain key (from the embedded store's key); undefined or failing: lines stay legacy.
   * `create`: about to append, so a store that has no key yet may create it now (the first line is then keyed too).
   */
  key?: (options: { create: boolean }) => Promise<AuditKey | undefined>;
  /** A second place holding the log's head: a file on another volume. */
  anchor?: string;
}

/** The last line, as the next append and the store's generation check need it. */
interface Tail {
  seq: number;
  link: string;
  keyed: boolean;
  kid?: string;
  generations: Map<string, number>;
}

/** A line waiting for the next group commit (see appendLine). */
interface PendingLine {
  event: AuditEvent;
  write: { store: string; generation: number } | undefined;
  /** A store announcement: whether that store has its next write waiting (see StoreJournal.announce). */
  more: (() => boolean) | undefined;
  resolve: (entry: AuditEntry) => void;
  reject: (error: unknown) => void;
}

interface Anchor {
  seq: number;
  link: string;
}

type GroupOutcome = { written: Array<{ entry: AuditEntry } | { error: unknown }> } | { error: unknown };

/** Each caller of a group settles: after the fsync that covers its line, or with the group's error. */
function settle(group: PendingLine[], outcome: GroupOutcome): void {
  group.forEach((line, i) => {
    if ('error' in outcome) return line.reject(outcome.error);
    const own = outcome.written[i]!;
    if ('entry' in own) line.resolve(own.entry);
    else line.reject(own.error);
  });
}

const emptyTail = (): Tail => ({ seq: 0, link: GENESIS_HASH, keyed: false, generations: new Map() });
const copyTail = (tail: Tail): Tail => ({ ...tail, generations: new Map(tail.generations) });

/**
 * The log file as this process left it after its last write: which file (device, inode), how
 * long, and when it was last changed (mtime, ctime, in nanoseconds). Equal later: nobody has
 * written, truncated, replaced or touched it since, so its last line is still ours.
 */
interface FileIdentity {
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

const identityOf = (stats: BigIntStats): FileIdentity => ({ dev: stats.dev, ino: stats.ino, size: stats.size, mtimeNs: stats.mtimeNs, ctimeNs: stats.ctimeNs });
const sameIdentity = (a: FileIdentity, b: FileIdentity) => a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;

/**
 * How long one process keeps the log's lock file at most while lines keep coming (see flush),
 * so a busy run takes the lock once per burst, not once per group, and another process waiting
 * for the lock still gets its turn; and how long it waits for a store's next announcement that
 * the store said was coming (it comes once the store has committed, well within this).
 */
const holdLockMs = 200;
const lingerMs = 20;
const anchorFormat = 'provkey-audit-anchor';

/** Who writes, worked out once per process (userInfo reads the passwd database each time). */
let actorOfProcess: AuditEntry['actor'] | undefined;

function actor(): AuditEntry['actor'] {
  actorOfProcess ??= actorNow();
  return { ...actorOfProcess };
}

function actorNow(): AuditEntry['actor'] {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // Containers may run as a uid with no passwd entry.
  }
  return { user, host: hostname(), pid: process.pid };
}

export class AuditLog implements StoreJournal {
  readonly file: string;
  readonly anchorFile: string | undefined;
  private readonly keyProvider: AuditLogOptions['key'];
  private key: AuditKey | undefined;

  constructor(file: string, options: AuditLogOptions = {}) {
    this.file = file;
    this.anchorFile = options.anchor;
    this.keyProvider = options.key;
  }

  async append(event: AuditEvent): Promise<AuditEntry> {
    return this.appendLine(event);
  }

  /** StoreJournal: called by a store under its own lock, before it commits `generation`. */
  async announce(store: string, generation: number, storeFile: string, more?: () => boolean): Promise<void> {
    await this.appendLine({ event: 'store.write', detail: { store, generation, file: storeFile } }, { store, generation }, more);
  }

  /**
   * A person accepts `store` as it is now (a backup restored on purpose, a log that was lost):
   * one keyed `store.accepted` line resets the store's announced generation to what it holds.
   * It is the only line `audit verify` lets take a generation back.
   */
  async acceptStore(store: string, generation: number, storeFile: string, announced: number): Promise<void> {
    await this.appendLine({ event: 'store.accepted', outcome: 'ok', detail: { store, generation, announced, file: storeFile } }, { store, generation });
  }

  /** StoreJournal: the generation the (checked) tail of the log announces for `store`. */
  async announced(store: string): Promise<number> {
    const tail = await this.checkedTail();
    return tail.generations.get(store) ?? 0;
  }

  /** Throws (exit 3) when the log cannot be appended to; called before a command changes anything. */
  async checkWritable(): Promise<void> {
    await this.checkedTail();
  }

  /** The chain key, or undefined when this run has none (no embedded default store, or it cannot be opened). */
  async chainKey(options: { create: boolean } = { create: false }): Promise<AuditKey | undefined> {
    if (this.key || !this.keyProvider) return this.key;
    // Only a found key is kept: a store that did not exist yet may have one after `init`.
    // A refused credential (a wrong passphrase) is that error, exit 6, not "no key" (which would read as a forged log).
    this.key = await this.keyProvider(options).catch((error: unknown) => {
      if (isProvkeyError(error) && error.exitCode === ExitCode.denied) throw error;
      return undefined;
    });
    return this.key;
  }

  async readAll(): Promise<AuditEntry[]> {
    const text = await readStateFile(this.file, 'audit log');
    if (text === undefined) return [];
    const entries: AuditEntry[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        entries.push(JSON.parse(line) as AuditEntry);
      } catch {
        // `history` shows what it can read; `audit verify` reports the damage.
      }
    }
    return entries;
  }

  /**
   * Lines are group-committed, like the store's writes: every line appended while a write+fsync
   * is running goes into the next one, under one lock, one tail check, one write and one fsync.
   * Each caller's promise settles only after the fsync that covers its own line (or rejects
   * with that group's error), so "audited before committed" holds for every caller exactly as
   * with one fsync per line; lines keep the order in which append was called.
   */
  private appendLine(event: AuditEvent, write?: { store: string; generation: number }, more?: () => boolean): Promise<AuditEntry> {
    return new Promise<AuditEntry>((resolve, reject) => {
      this.pending.push({ event, write, more, resolve, reject });
      this.wake?.();
      this.flushing ??= this.flush();
    });
  }

  private pending: PendingLine[] = [];
  private flushing: Promise<void> | undefined;
  /** Resolves a flush that lingers for the next line (see holdLockMs). */
  private wake: (() => void) | undefined;
  private directoryMade = false;
  /** The file and its last line as this process's last write left them (see FileIdentity); undefined: read it. */
  private written: { identity: FileIdentity; tail: Tail } | undefined;

  /**
   * One lock hold writes group after group while lines keep coming: those appended during a
   * group's write, or the next announcement of a store that said it has another write waiting
   * (it comes as soon as the store has committed). The hold ends when neither is the case, or
   * after holdLockMs, so another process waiting for the lock gets its turn. The callers of the
   * last group of a hold settle after the lock is let go, as when every group took it anew.
   */
  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      let group: PendingLine[] = [];
      let last: { group: PendingLine[]; outcome: GroupOutcome } | undefined;
      try {
        if (!this.directoryMade) {
          await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
          this.directoryMade = true;
        }
        await withFileLock(`${this.file}.lock`, defaultLockOptions, async () => {
          await removeStaleTemps([this.file, `${this.file}.lock`], defaultLockOptions.staleAfterMs);
          const letGoAt = Date.now() + holdLockMs;
          try {
            for (;;) {
              group = this.pending.splice(0);
              const outcome = await this.writeGroup(group).then(
                (written) => ({ written }),
                (error: unknown) => ({ error }),
              );
              const held = Date.now() < letGoAt;
              const awaited = held && this.pending.length === 0 && group.some((line) => line.more?.() === true);
              if (!held || (this.pending.length === 0 && !awaited)) {
                last = { group, outcome };
                return;
              }
              settle(group, outcome);
              group = [];
              if (awaited) await this.lingerForLines();
              if (this.pending.length === 0) return;
            }
          } finally {
            // Closed before the lock is let go: the next holder may be another process.
            await this.closeHeld().catch(() => undefined);
          }
        });
      } catch (error) {
        // The lock could not be taken (or let go): the lines not yet settled fail with it.
        for (const line of last ? last.group : group.length > 0 ? group : this.pending.splice(0)) line.reject(error);
        continue;
      }
      if (last) settle(last.group, last.outcome);
    }
    // Cleared in the same tick as the empty check above: a line appended after it starts a new flush.
    this.flushing = undefined;
  }

  /** Waits up to lingerMs for the next line (appendLine wakes it). */
  private lingerForLines(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, lingerMs);
      this.wake = done;
    });
  }

  /**
   * Called with the log's lock held (see flush). When this process wrote the last line and the
   * file is still exactly as that write left it (see FileIdentity), its last line is that line,
   * checked when it was made: reading it back would prove nothing more, and the append handle
   * of that write is used again. Anything else (another writer, a truncation, an edit in place,
   * a replaced file) changed the identity: the tail is read and checked again, as on a first write.
   */
  private async writeGroup(group: PendingLine[]): Promise<Array<{ entry: AuditEntry } | { error: unknown }>> {
    const key = await this.chainKey({ create: true });
    const written = this.written;
    this.written = undefined;
    let tail: Tail | undefined;
    let before: FileIdentity | undefined;
    if (written && this.held) {
      const now = await lstat(this.file, { bigint: true }).catch(() => undefined);
      if (now && sameIdentity(identityOf(now), written.identity)) {
        tail = written.tail;
        before = written.identity;
      }
    }
    if (!tail) {
      await this.closeHeld();
      if (written) {
        this.held = (await openStateFile(this.file, 'append', 'audit log'))!;
        before = identityOf(await this.held.stat({ bigint: true }));
        if (sameIdentity(before, written.identity)) tail = written.tail;
      }
      tail ??= await this.readTail();
    }
    if (this.anchorFile) await this.checkAnchor(tail);
    return this.writeLines(group, key, tail, before);
  }

  /** The append handle of this lock hold (see flush), if one is open. */
  private held: FileHandle | undefined;

  private async closeHeld(): Promise<void> {
    const handle = this.held;
    this.held = undefined;
    await handle?.close();
  }

  private async writeLines(group: PendingLine[], key: AuditKey | undefined, tail: Tail, before: FileIdentity | undefined): Promise<Array<{ entry: AuditEntry } | { error: unknown }>> {
    if (!key && tail.keyed) {
      throw new NeedsHumanError(
        `audit log ${this.file} is keyed, but this run cannot open the embedded store its key comes from, so nothing was changed (set the store's passphrase, or restore its key file)`,
        'audit.no_key',
      );
    }
    const texts: string[] = [];
    let { seq, link } = tail;
    const generations = tail.generations;
    const push = (body: Record<string, unknown>): Record<string, unknown> => {
      // Unkeyed lines carry generations only when there are some (see the forgery check in readTail).
      const carried = key || generations.size > 0 ? { generations: generationsObject(generations) } : {};
      const full = { seq: ++seq, at: new Date().toISOString(), actor: actor(), ...body, ...carried, prev: link };
      const sealed = sealLine(full, key);
      texts.push(sealed.text);
      link = sealed.link;
      return full;
    };
    // First keyed line of a log written before keys: says where the legacy part ends, and its
    // prev (the last legacy hash) seals every legacy line, which is unkeyed up to here.
    if (key && !tail.keyed && tail.seq > 0) push({ event: 'audit.upgraded', detail: { legacyLines: tail.seq, keyId: key.id } });
    // Each line carries the generations as of itself: a store.write line announces its own.
    const written = group.map((line) => {
      let body: Record<string, unknown>;
      try {
        // Redacted here, after the key provider ran (opening the store registers its secrets);
        // an event that cannot be serialised fails alone, not its group.
        body = JSON.parse(redact(JSON.stringify(line.event))) as Record<string, unknown>;
      } catch (error) {
        return { error };
      }
      if (line.write) generations.set(line.write.store, line.write.generation);
      return { entry: push(body) as unknown as AuditEntry };
    });
    if (texts.length === 0) {
      if (before) this.written = { identity: before, tail: copyTail(tail) };
      return written;
    }
    this.held ??= (await openStateFile(this.file, 'append', 'audit log'))!;
    const handle = this.held;
    const bytes = Buffer.from(texts.map((text) => `${text}\n`).join(''), 'utf8');
    const start = before?.size ?? identityOf(await handle.stat({ bigint: true })).size;
    await handle.write(bytes);
    await handle.sync();
    const after = identityOf(await handle.stat({ bigint: true }));
    // Remembered only when the file grew by exactly these lines (no one else wrote meanwhile).
    if (after.size === start + BigInt(bytes.length)) this.written = { identity: after, tail: { seq, link, keyed: key !== undefined, ...(key ? { kid: key.id } : {}), generations: new Map(generations) } };
    if (this.anchorFile) await this.writeAnchor({ seq, link });
    return written;
  }

  /**
   * The last line, refused when it is damaged, not authentic (keyed, and this run has the
   * key), made with another key, or behind the anchor: appending to (or trusting the
   * generations of) a damaged log would hide the damage.
   */
  private async checkedTail(): Promise<Tail> {
    const written = this.written;
    if (written && !this.anchorFile) {
      // Unchanged since this process's own last write (see FileIdentity): that write's tail.
      const now = await lstat(this.file, { bigint: true }).catch(() => undefined);
      if (now && sameIdentity(identityOf(now), written.identity)) return copyTail(written.tail);
    }
    const tail = await this.readTail();
    if (this.anchorFile) await this.checkAnchor(tail);
    return tail;
  }

  private async readTail(): Promise<Tail> {
    const handle = await openStateFile(this.file, 'read', 'audit log');
    if (!handle) return emptyTail();
    let last: string | undefined;
    let complete = true;
    try {
      // Only the tail is needed: read backwards, 8 KiB first (a line is well under 1 KiB; this
      // runs once per append group), growing fourfold until a whole last line is seen.
      const { size } = await handle.stat();
      let chunk = 8192;
      for (;;) {
        const start = Math.max(0, size - chunk);
        const buffer = Buffer.alloc(size - start);
        await handle.read(buffer, 0, buffer.length, start);
        const text = buffer.toString('utf8');
        const lines = text.split('\n').filter((l) => l.trim() !== '');
        if (lines.length >= 2 || start === 0) {
          last = lines.at(-1);
          complete = text.endsWith('\n');
          break;
        }
        chunk *= 4;
      }
    } finally {
      await handle.close();
    }
    if (last === undefined) return emptyTail();
    const damaged = (why: string) =>
      new NeedsHumanError(`audit log ${this.file}: its last line ${why}, so nothing was changed; run "provkey audit verify" and repair or move the log`, 'audit.damaged');
    const parsed = complete ? parseLine(last) : undefined;
    if (!parsed) throw damaged('is damaged');
    if (parsed.keyed) {
      const key = await this.chainKey();
      if (key && key.id !== parsed.entry.kid) throw damaged('was written with a different store key');
      if (key && lineIsAuthentic(parsed, key) !== true) throw damaged('fails its MAC (edited or forged)');
    } else {
      if (lineIsAuthentic(parsed, undefined) !== true) throw damaged('does not match its hash (edited)');
      // An unkeyed line after keyed ones is a forgery (anyone can compute a hash): it could
      // claim older store generations. Scanned only while the log's tail is unkeyed.
      // Lines of the release before keys never carry generations; with a key, one that does is forged.
      if (await this.chainKey()) {
        if ('generations' in parsed.entry) throw damaged('carries store generations without a MAC although the log has a key (forged)');
        if (await this.hasKeyedLine()) throw damaged('is unkeyed although keyed lines come before it (forged)');
      }
    }
    return tailOf(parsed);
  }

  private async checkAnchor(tail: Tail): Promise<void> {
    const anchorFile = this.anchorFile!;
    const anchor = await readAnchor(anchorFile);
    if (!anchor) return;
    if (anchor.seq > tail.seq) {
      throw new NeedsHumanError(
        `audit log ${this.file} ends at line ${tail.seq}, but its anchor ${anchorFile} records line ${anchor.seq}: lines were cut from the end of the log, or an older log was put back`,
        'audit.behind_anchor',
      );
    }
    const link = anchor.seq === tail.seq ? tail.link : await this.linkAt(anchor.seq);
    if (link !== anchor.link) {
      throw new NeedsHumanError(`audit log ${this.file} line ${anchor.seq} is not the line its anchor ${anchorFile} recorded: the log was replaced or rewritten`, 'audit.anchor_mismatch');
    }
  }

  private async hasKeyedLine(): Promise<boolean> {
    const text = (await readStateFile(this.file, 'audit log')) ?? '';
    return text.split('\n').some((line) => parseLine(line)?.keyed === true);
  }

  /** The link of line `seq` (the anchor lags the log by a line after a crash between the two writes). */
  private async linkAt(seq: number): Promise<string | undefined> {
    const text = (await readStateFile(this.file, 'audit log')) ?? '';
    const line = text.split('\n').filter((l) => l.trim() !== '')[seq - 1];
    const parsed = line === undefined ? undefined : parseLine(line);
    return parsed && parsed.entry.seq === seq ? parsed.link : undefined;
  }

  private async writeAnchor(anchor: Anchor): Promise<void> {
    const anchorFile = this.anchorFile!;
    await mkdir(path.dirname(anchorFile), { recursive: true, mode: 0o700 });
    await removeStaleTemps([anchorFile], defaultLockOptions.staleAfterMs);
    await writeFileAtomic(anchorFile, `${JSON.stringify({ format: anchorFormat, log: this.file, ...anchor })}\n`);
  }
}

function tailOf(parsed: ParsedLine): Tail {
  return {
    seq: parsed.entry.seq as number,
    link: parsed.link,
    keyed: parsed.keyed,
    ...(parsed.keyed ? { kid: parsed.entry.kid as string } : {}),
    generations: generationsOf(parsed.entry),
  };
}

/** The anchor's head, undefined when there is none yet; a damaged anchor is refused. */
export async function readAnchor(anchorFile: string): Promise<Anchor | undefined> {
  const text = await readStateFile(anchorFile, 'audit anchor');
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as Partial<Anchor> & { format?: string };
    if (value.format === anchorFormat && Number.isSafeInteger(value.seq) && typeof value.link === 'string') return { seq: value.seq!, link: value.link };
  } catch {
    // Reported below.
  }
  throw new NeedsHumanError(`audit anchor ${anchorFile} is damaged: it is not an anchor provkey wrote`, 'audit.anchor_damaged');
}
