import type { Client } from 'ldapts';
import type { SecretInUse } from '../target.js';
import { closeQuietly } from './connection.js';
import { firstValue } from './ppolicy.js';
import { bindWithPolicy } from './probes.js';
import { WRITE_SERVER, type LastChange, type LdapTargetState } from './target-state.js';

/**
 * Whether a change made on the writable server has reached a replica, told without a failed
 * bind there. A replica running ppolicy counts failed binds locally, and binding the previous
 * password to see whether it is gone is a failed bind as soon as the change has arrived.
 *
 * So, before the change, provkey binds to every replica as the identity about to make it (the
 * account with the password it has now, or the admin) and keeps that connection open: it stays
 * authenticated after the password changes. After the change it reads the account entry's
 * entryCSN on the writable server. A replica has the change once its copy of the entry carries
 * that entryCSN or a later one, and only then is the new password bound there, once.
 *
 * A consumer's local ppolicy writes (pwdFailureTime) do not change entryCSN (slapd 2.5), so
 * they never pass for the change. Without entryCSN (not readable, or the watch connection is
 * gone) the check says `unknown` and the caller falls back to binding (connection-test.ts).
 */

/** A connection to a replica opened before a change, bound as the identity that made it. */
export interface Watcher {
  client: Client;
  /** entryCSN of the account entry on this server before the change. */
  before: string;
  /** Fingerprint of the account password this connection bound with (none for the admin). */
  boundWith?: string;
}

/** What provkey knows one server's copy of the account entry held at one entryCSN. */
interface KnownState {
  fingerprint: string;
  /** Seen binding at this entryCSN; otherwise assumed from the writable server's state. */
  proven: boolean;
}

export type Arrival =
  | { state: 'arrived' | 'lagging'; csn: string; detail: string }
  | { state: 'unknown'; detail: string };

/** entryCSN of `dn` (an operational attribute, so asked for by name); undefined when not visible. */
export async function readEntryCsn(client: Client, dn: string): Promise<string | undefined> {
  try {
    const result = await client.search(dn, { scope: 'base', filter: '(objectClass=*)', attributes: ['entryCSN'] });
    const entry = result.searchEntries[0];
    const csn = entry ? firstValue(entry, 'entryCSN') : undefined;
    return csn && CSN.test(csn) ? csn : undefined;
  } catch {
    return undefined;
  }
}

/** GeneralizedTime, then fixed-width change count, server id and modifier: ordered as strings. */
const CSN = /^\d{14}(\.\d+)?Z#[0-9a-f]+#[0-9a-f]+#[0-9a-f]+$/i;

/** True when `csn` is `mark` or a later change of the same entry. */
export function notBefore(csn: string, mark: string): boolean {
  return csn >= mark;
}

/**
 * The replica watchers of one change, opened before it is made. `handOver` gives them to the
 * change; `close` closes whatever was not handed over (the change failed or was never made).
 */
export class WatcherSet {
  #watchers = new Map<number, Watcher>();
  /** Replicas where the account's bind was refused before the change: never asked with that password again. */
  readonly refusedBefore = new Set<number>();

  set(index: number, watcher: Watcher): void {
    this.#watchers.set(index, watcher);
  }

  get size(): number {
    return this.#watchers.size;
  }

  handOver(): Map<number, Watcher> {
    const watchers = this.#watchers;
    this.#watchers = new Map();
    return watchers;
  }

  async close(): Promise<void> {
    await closeWatchers(this.handOver());
  }
}

export async function closeWatchers(watchers: Map<number, Watcher>): Promise<void> {
  const clients = [...watchers.values()].map((w) => w.client);
  watchers.clear();
  await Promise.all(clients.map((client) => closeQuietly(client)));
}

export type WatchIdentity = { account: SecretInUse } | 'admin';

/**
 * Before a change: on every replica, binds as the identity about to make the change and reads
 * the account's entryCSN. A replica where that fails gets no watcher. The account is never
 * bound with a password the guard holds back there.
 */
export async function openWatchers(state: LdapTargetState, as: WatchIdentity): Promise<WatcherSet> {
  const set = new WatcherSet();
  const { servers } = state.setup;
  if (servers.length < 2) return set;
  await Promise.all(
    servers.map(async (server, index) => {
      if (index === WRITE_SERVER) return;
      if (as !== 'admin' && !state.guard.check(index, as.account.fingerprint).ok) return;
      const connection = await state.connector.open(server);
      if (!connection.ok) return;
      const client = connection.client;
      let kept = false;
      try {
        if (as === 'admin') {
          if (!(await state.bindAdmin(client)).ok) return;
        } else {
          const bind = await bindWithPolicy(client, state.config.bindDn, as.account.value, state.scrub);
          state.recordBind(index, as.account, bind.ok, bind.failure);
          if (!bind.ok) {
            if (bind.failure!.kind === 'rejected') set.refusedBefore.add(index);
            return;
          }
        }
        const before = await readEntryCsn(client, state.config.bindDn);
        if (!before) return;
        set.set(index, { client, before, ...(as === 'admin' ? {} : { boundWith: as.account.fingerprint }) });
        kept = true;
      } finally {
        if (!kept) await closeQuietly(client);
      }
    }),
  );
  return set;
}

/** Per server: entryCSN → the password the account entry held there (kept for the target's life). */
export class ReplicaStates {
  readonly #known = new Map<number, Map<string, KnownState>>();

  /** A proven state replaces an assumed one; otherwise the first word stands (the entry has not changed since). */
  know(index: number, csn: string, fingerprint: string, proven: boolean): void {
    const states = this.#known.get(index) ?? new Map<string, KnownState>();
    const known = states.get(csn);
    if (!known || (proven && !known.proven)) states.set(csn, { fingerprint, proven });
    this.#known.set(index, states);
  }

  get(index: number, csn: string): KnownState | undefined {
    return this.#known.get(index)?.get(csn);
  }
}

/**
 * Has `change` reached replica `index`? Reads the account's entryCSN there through the
 * change's watcher: an entry state provkey knows tells which password the replica has;
 * otherwise the change's own entryCSN (or a later one) means it has arrived.
 */
export async function checkArrival(state: LdapTargetState, index: number, change: LastChange): Promise<Arrival> {
  const watcher = change.watchers.get(index);
  if (!watcher || !change.mark) return { state: 'unknown', detail: 'no replication watch on this server' };
  const csn = await readEntryCsn(watcher.client, state.config.bindDn);
  if (!csn) {
    change.watchers.delete(index);
    await closeQuietly(watcher.client);
    return { state: 'unknown', detail: "the account's entryCSN could not be read here any more" };
  }
  const known = state.replicas.get(index, csn);
  if (known) {
    if (known.fingerprint === change.to) return { state: 'arrived', csn, detail: `entryCSN ${csn}: this entry holds ${change.to}` };
    return { state: 'lagging', csn, detail: `still has ${known.fingerprint} (entryCSN ${csn}): the change has not reached this server yet` };
  }
  if (notBefore(csn, change.mark)) return { state: 'arrived', csn, detail: `entryCSN ${csn} is the change's (${change.mark}) or later: the change has arrived` };
  return { state: 'lagging', csn, detail: `entryCSN ${csn} is older than the change's ${change.mark}: the change has not reached this server yet` };
}

/** The watcher of a server that accepted the change is no longer needed. */
export async function stopWatching(change: LastChange, index: number): Promise<void> {
  const watcher = change.watchers.get(index);
  if (!watcher) return;
  change.watchers.delete(index);
  await closeQuietly(watcher.client);
}
