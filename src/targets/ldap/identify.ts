import type { Client } from 'ldapts';
import type { CandidateVerdict, Identification, SecretInUse } from '../target.js';
import { readAccountEvidence, type AccountEvidence } from './account.js';
import { closeQuietly } from './connection.js';
import { storedPasswordMatches } from './password-hash.js';
import { identifyBindBudget } from './ppolicy.js';
import { bindWithPolicy } from './probes.js';
import type { LdapFailure } from './result-codes.js';
import { WRITE_SERVER, type LdapTargetState } from './target-state.js';

/**
 * `identify`: which of the candidate passwords the account has, to converge an interrupted
 * change, spending as few failed binds as the directory allows (each one counts toward
 * pwdMaxFailure, and provkey must never be what locks the account).
 *
 * Asked on the writable server, where changes are made (replicas catch up; the engine's
 * test after converging waits for them). In order:
 * 1. Evidence that costs no failed bind, read as the admin when there is one: the stored
 *    userPassword values (checked locally against each candidate), pwdAccountLockedTime,
 *    pwdFailureTime, pwdChangedTime. A candidate generated after the password last changed
 *    can never have been set.
 * 2. A bind with a candidate the stored value proves: it cannot fail for a wrong password.
 * 3. Binds with the remaining candidates, most likely first, within identifyBindBudget: one
 *    failed bind per server per run, none at pwdMaxFailure ≤ 3 or when the limit is unknown.
 *    What the budget leaves untried is "unknown", and the detail says so.
 * An outage is "unreachable" for every candidate not yet decided, never "rejected".
 */

/** Clocks of provkey's host and the directory may differ: closer than this proves nothing. */
const CLOCK_SKEW_MS = 5 * 60_000;

export async function identifyPassword(state: LdapTargetState, candidates: SecretInUse[]): Promise<Identification> {
  const unique = candidates.filter((c, i) => candidates.findIndex((o) => o.fingerprint === c.fingerprint) === i);
  state.remember(...unique.map((c) => c.value));
  const run = new IdentifyRun(state, unique);
  if (unique.length === 0) return { verdicts: {}, detail: 'no candidate versions to identify' };
  // An empty password binds anonymously, which "succeeds": never asked.
  for (const c of unique.filter((c) => c.value === '')) {
    run.verdicts[c.fingerprint] = 'unknown';
    run.note(`${c.fingerprint} is empty: not bound (an LDAP bind without a password is anonymous)`);
  }
  const server = state.setup.servers[WRITE_SERVER]!;

  const evidence = await run.readEvidence();
  if (evidence === 'unreachable') return run.result();
  if (evidence) run.weigh(evidence);

  const undecided = run.undecided();
  if (undecided.length === 0) return run.result();

  // Candidates the stored value proves go first: a bind with them cannot fail for a wrong password.
  const proven = undecided.filter((c) => run.proven.has(c.fingerprint));
  const rest = undecided.filter((c) => !run.proven.has(c.fingerprint));
  const ordered = [...proven, ...run.byLikelihood(rest, evidence?.changedAt)];
  const budget = identifyBindBudget(state.policy.policy, evidence?.failures);
  let room = budget - state.failedBindsThisRun(WRITE_SERVER);

  const connection = await state.connector.open(server);
  if (!connection.ok) {
    run.allUndecided(verdictOfOutage(connection.failure), `${server.url}: ${connection.failure.detail}`);
    return run.result();
  }
  try {
    for (const candidate of ordered) {
      if (run.decided(candidate) || candidate.value === '') continue;
      const safe = run.proven.has(candidate.fingerprint);
      if (!safe && room <= 0) {
        run.note(`${undecided.filter((c) => !run.decided(c)).map((c) => c.fingerprint).join(', ')} not tried: ${budgetReason(state, budget, evidence?.failures)}`);
        break;
      }
      const outcome = await bindOnce(state, connection.client, candidate);
      if (outcome === 'lost') {
        run.note(`the connection to ${server.url} was lost`);
        run.allUndecided('unreachable');
        break;
      }
      if (outcome.failure?.kind === 'rejected' && !safe) room -= 1;
      if (run.record(candidate, outcome)) break;
    }
  } finally {
    await closeQuietly(connection.client);
  }
  const spent = state.failedBindsThisRun(WRITE_SERVER);
  run.note(`${spent} failed bind(s) on ${server.url} in this run (budget ${budget})`);
  return run.result();
}

type BindOutcome = { ok: true; detail?: string } | { ok: false; failure: LdapFailure; expired: boolean; locked: boolean };

/** One bind as the account on the run's connection (a failed bind leaves it anonymous and usable for the next). */
async function bindOnce(state: LdapTargetState, client: Client, candidate: SecretInUse): Promise<(BindOutcome & { failure?: LdapFailure }) | 'lost'> {
  const bind = await bindWithPolicy(client, state.config.bindDn, candidate.value, state.scrub);
  state.recordBind(WRITE_SERVER, candidate, bind.ok, bind.failure);
  if (bind.ok) return { ok: true, ...(bind.ppolicy?.errorName ? { detail: `ppolicy: ${bind.ppolicy.errorName}` } : {}) };
  const failure = bind.failure!;
  if (failure.kind === 'unreachable' && (failure.status === 'closed' || failure.status === 'ECONNRESET')) return 'lost';
  return { ok: false, failure, expired: bind.ppolicy?.errorName === 'passwordExpired', locked: bind.ppolicy?.errorName === 'accountLocked' };
}

/** No answer, or not the server we trust: "unreachable"; any other answer that is not a 49 says nothing: "unknown". */
function verdictOfOutage(failure: LdapFailure): CandidateVerdict {
  return failure.kind === 'unreachable' || failure.kind === 'tls' ? 'unreachable' : 'unknown';
}

function budgetReason(state: LdapTargetState, budget: number, failuresHeld: number | undefined): string {
  const policy = state.policy.policy;
  if (budget > 0) return `the failed-bind budget of ${budget} per server per run is spent`;
  if (policy.maxFailure === undefined) {
    return 'pwdMaxFailure is not known, so provkey spends no failed bind (give an admin credential, or set passwordPolicy.maxFailure)';
  }
  if (failuresHeld !== undefined && failuresHeld > 0 && policy.maxFailure > 3) {
    return `the account already has ${failuresHeld} failed bind(s) of pwdMaxFailure ${policy.maxFailure}; another could lock it`;
  }
  return `pwdMaxFailure ${policy.maxFailure} leaves no failed bind to spend (none at 3 or fewer)`;
}

/** The verdicts and notes of one identify call. */
class IdentifyRun {
  readonly verdicts: Record<string, CandidateVerdict> = {};
  /** Candidates whose value the stored userPassword proves. */
  readonly proven = new Set<string>();
  readonly #notes: string[] = [];
  readonly #state: LdapTargetState;
  readonly #candidates: SecretInUse[];

  constructor(state: LdapTargetState, candidates: SecretInUse[]) {
    this.#state = state;
    this.#candidates = candidates;
    for (const c of candidates) this.verdicts[c.fingerprint] = 'unknown';
  }

  note(text: string): void {
    this.#notes.push(text);
  }

  decided(c: SecretInUse): boolean {
    return this.verdicts[c.fingerprint] !== 'unknown';
  }

  undecided(): SecretInUse[] {
    return this.#candidates.filter((c) => !this.decided(c));
  }

  allUndecided(verdict: CandidateVerdict, why?: string): void {
    for (const c of this.undecided()) this.verdicts[c.fingerprint] = verdict;
    if (why) this.note(why);
  }

  result(): Identification {
    return { verdicts: { ...this.verdicts }, detail: this.#state.scrub(this.#notes.join('; ')) };
  }

  /** The account entry as the admin (or anonymously): 'unreachable' when the server cannot be reached at all. */
  async readEvidence(): Promise<AccountEvidence | undefined | 'unreachable'> {
    const state = this.#state;
    const server = state.setup.servers[WRITE_SERVER]!;
    const connection = await state.connector.open(server);
    if (!connection.ok) {
      this.allUndecided(verdictOfOutage(connection.failure), `${server.url}: ${connection.failure.detail}`);
      return 'unreachable';
    }
    try {
      let as = 'anonymously';
      if (state.setup.admin) {
        const bound = await state.bindAdmin(connection.client);
        if (bound.ok) {
          as = `as ${state.setup.admin.dn}`;
          await state.loadPolicyOn(connection.client, 'admin');
        } else {
          this.note(`no admin evidence (${bound.result.ok ? '' : bound.result.detail})`);
        }
      }
      const evidence = await readAccountEvidence(connection.client, state.config.bindDn);
      if (!evidence) this.note(`the account entry is not readable ${as}`);
      else this.note(`account entry read ${as}`);
      return evidence;
    } finally {
      await closeQuietly(connection.client);
    }
  }

  /** Decides what the entry alone proves: a stored value that matches or not, a lock, a change older than a version. */
  weigh(evidence: AccountEvidence): void {
    if (evidence.passwords.length > 0) {
      const matches = new Map(this.#candidates.map((c) => [c.fingerprint, storedPasswordMatches(c.value, evidence.passwords)] as const));
      const matching = this.#candidates.filter((c) => matches.get(c.fingerprint) === true);
      for (const c of matching) this.proven.add(c.fingerprint);
      for (const c of this.#candidates) {
        if (matches.get(c.fingerprint) === false) this.verdicts[c.fingerprint] = 'rejected';
      }
      const checked = [...matches.values()].some((m) => m !== undefined);
      if (matching.length > 0) this.note(`userPassword matches ${matching.map((c) => c.fingerprint).join(', ')}`);
      else if (checked) this.note('userPassword matches none of the candidates (the password was changed outside provkey)');
      else this.note('userPassword uses a scheme provkey cannot check');
    }
    if (evidence.lockedSince) {
      // A locked account refuses every password: that is the answer for each candidate.
      this.note(`the account is locked (${evidence.lockedSince}): an admin must unlock it`);
      this.allUndecided('rejected');
      for (const fp of this.proven) this.verdicts[fp] = 'rejected';
      return;
    }
    if (evidence.changedAt) {
      const changed = evidence.changedAt.getTime();
      for (const c of this.undecided()) {
        const created = c.createdAt ? Date.parse(c.createdAt) : NaN;
        if (!this.proven.has(c.fingerprint) && Number.isFinite(created) && created > changed + CLOCK_SKEW_MS) {
          this.verdicts[c.fingerprint] = 'rejected';
          this.note(`${c.fingerprint} was generated after the password last changed (pwdChangedTime ${evidence.changedAt.toISOString()}): never set`);
        }
      }
    }
  }

  /**
   * Most likely first: the caller's order, except that with pwdChangedTime known, the newest
   * candidate created before the last change goes first (it is the one that change set).
   */
  byLikelihood(candidates: SecretInUse[], changedAt: Date | undefined): SecretInUse[] {
    if (!changedAt) return candidates;
    const changed = changedAt.getTime();
    const createdOf = (c: SecretInUse) => (c.createdAt ? Date.parse(c.createdAt) : NaN);
    const before = candidates.filter((c) => Number.isFinite(createdOf(c)) && createdOf(c) <= changed + CLOCK_SKEW_MS);
    if (before.length === 0) return candidates;
    const likeliest = before.reduce((a, b) => (createdOf(b) > createdOf(a) ? b : a));
    return [likeliest, ...candidates.filter((c) => c !== likeliest)];
  }

  /** Records one bind; true when identification is complete (stop binding). */
  record(candidate: SecretInUse, outcome: BindOutcome): boolean {
    const fp = candidate.fingerprint;
    if (outcome.ok) {
      this.verdicts[fp] = 'accepted';
      this.note(`${fp} binds${outcome.detail ? ` (${outcome.detail})` : ''}`);
      // One password per account: nothing else can bind, and trying would be a sure failure.
      return true;
    }
    const { failure } = outcome;
    if (failure.kind !== 'rejected') {
      this.verdicts[fp] = verdictOfOutage(failure);
      this.note(`${fp}: ${failure.detail}`);
      if (failure.kind === 'unreachable' || failure.kind === 'tls') {
        this.allUndecided('unreachable');
        return true;
      }
      return false;
    }
    this.verdicts[fp] = 'rejected';
    if (outcome.locked) {
      this.note(`${fp}: ${failure.detail}`);
      this.allUndecided('rejected');
      return true;
    }
    if (outcome.expired) {
      // slapd reports passwordExpired only for the right password: this is the one it holds.
      this.note(`${fp} is the account's password but it has expired (${failure.detail})`);
      return true;
    }
    this.note(`${fp}: ${failure.detail}`);
    return false;
  }
}
