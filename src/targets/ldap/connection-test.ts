import type { Client } from 'ldapts';
import type { ConnectionTest, Probe, SecretInUse, TestOptions, Verdict } from '../target.js';
import { closeQuietly } from './connection.js';
import { bindWithPolicy, combineVerdicts, judgeBind, probeConnect, probeSearch, probeWhoami, skipped, verdictOfFailure } from './probes.js';
import { checkArrival, stopWatching } from './replication.js';
import { probeWrites, writeProbeNotConfigured } from './write-probe.js';
import { WRITE_SERVER, type LastChange, type LdapTargetState } from './target-state.js';

/**
 * The LDAP target's connection test, on every listed server at once: accept (connect, bind,
 * Who am I?, a search under searchBase; a replica the last change has not reached yet is
 * reported as lagging, see replication.ts) or reject (one bind that must fail with 49).
 */

type ServerResult = { verdict: Verdict; probes: Probe[] };

/** The provisioning write probe (write-probe.ts) on the writable server, once the account was accepted there. */
async function writeProbe(state: LdapTargetState, secret: SecretInUse, verdict: Verdict, effect: TestOptions['effect']): Promise<Probe[]> {
  const config = state.config.writeProbe;
  if (!config) return [writeProbeNotConfigured()];
  if (verdict !== 'accepted') return [skipped('write', 'not run: the account was not accepted')];
  const server = state.setup.servers[WRITE_SERVER]!;
  return state.onServer(
    server,
    async (client) => {
      const bind = await bindWithPolicy(client, state.config.bindDn, secret.value, state.scrub);
      state.recordBind(WRITE_SERVER, secret, bind.ok, bind.failure);
      if (!bind.ok) return [{ name: 'write', outcome: 'fail', status: bind.failure!.status, ms: bind.ms, detail: bind.failure!.detail } as Probe];
      return probeWrites(client, config, { activeDirectory: false, scrub: state.scrub, ...(effect ? { effect } : {}) });
    },
    (failure) => [{ name: 'write', outcome: 'fail', status: failure.status, ms: 0, detail: failure.detail } as Probe],
  );
}

export async function testPassword(state: LdapTargetState, secret: SecretInUse, options: TestOptions): Promise<ConnectionTest> {
  const at = new Date().toISOString();
  const started = performance.now();
  state.remember(secret.value);
  const expected: Verdict = options.expect === 'accept' ? 'accepted' : 'rejected';
  if (secret.value === '') {
    const probe: Probe = { name: 'bind', outcome: 'fail', ms: 0, detail: 'empty password: an LDAP bind without a password is an anonymous bind; not sent' };
    return { expect: options.expect, verdict: 'error', ok: false, probes: [probe], at, ms: 0 };
  }
  const results = await Promise.all(
    state.setup.servers.map((_, index) => (options.expect === 'accept' ? acceptOn(state, index, secret) : rejectOn(state, index, secret))),
  );
  const several = state.setup.servers.length > 1;
  const probes = results.flatMap((result, index) => (several ? result.probes.map((p) => ({ ...p, name: `${p.name}-${index + 1}` })) : result.probes));
  if (options.write && options.expect === 'accept') probes.push(...(await writeProbe(state, secret, results[WRITE_SERVER]!.verdict, options.effect)));
  const verdict = combineVerdicts(
    results.map((r) => r.verdict),
    options.expect,
  );
  return {
    expect: options.expect,
    verdict,
    ok: verdict === expected && probes.every((p) => p.outcome !== 'fail'),
    probes: probes.map((p) => (p.detail ? { ...p, detail: state.scrub(p.detail) } : p)),
    at,
    ms: Math.round(performance.now() - started),
  };
}

async function acceptOn(state: LdapTargetState, index: number, secret: SecretInUse): Promise<ServerResult> {
  const server = state.setup.servers[index]!;
  const { bindDn, searchBase, searchFilter } = state.config;
  const connection = await state.connector.open(server);
  const probes: Probe[] = [probeConnect(connection, server.url)];
  const notRun = (why: string) => ['bind', 'whoami', 'search'].filter((n) => !probes.some((p) => p.name === n)).map((n) => skipped(n, why));
  if (!connection.ok) return { verdict: verdictOfFailure(connection.failure), probes: [...probes, ...notRun('not run: no connection')] };
  const client = connection.client;
  try {
    // A replica is bound with the new password only once the change has reached it: before
    // that, the bind would fail and count toward pwdMaxFailure there.
    const change = state.change;
    const pending = change && change.to === secret.fingerprint && !change.confirmed.has(index) ? change : undefined;
    let arrival: { csn?: string; proven: boolean } = { proven: false };
    if (pending) {
      const replication = await replicationCheck(state, index, client, pending);
      if (replication.probe) probes.push(replication.probe);
      if ('verdict' in replication) return { verdict: replication.verdict, probes: [...probes, ...notRun(replication.why)] };
      arrival = replication;
    }
    const gate = state.guard.check(index, secret.fingerprint, Date.now(), { changeArrived: arrival.proven });
    if (!gate.ok) {
      probes.push({ name: 'bind', outcome: 'fail', ms: 0, detail: gate.reason });
      return { verdict: 'rejected', probes: [...probes, ...notRun('not run')] };
    }
    const bind = await bindWithPolicy(client, bindDn, secret.value, state.scrub);
    state.recordBind(index, secret, bind.ok, bind.failure);
    const judged = judgeBind(bind, 'accept');
    probes.push(judged.probe);
    if (!bind.ok) return { verdict: judged.verdict, probes: [...probes, ...notRun('not run: the bind failed')] };
    if (pending) {
      pending.confirmed.add(index);
      if (arrival.csn) state.replicas.know(index, arrival.csn, secret.fingerprint, true);
      await stopWatching(pending, index);
    }
    probes.push(await probeWhoami(client, bindDn, state.scrub));
    probes.push(await probeSearch(client, searchBase, searchFilter, state.scrub));
    if (index === WRITE_SERVER && bind.ppolicy?.errorName !== 'changeAfterReset') await state.loadPolicyOn(client, 'account');
    return { verdict: 'accepted', probes };
  } finally {
    await closeQuietly(client);
  }
}

type ReplicationCheck =
  | { probe?: Probe; verdict: Verdict; why: string }
  | { probe?: Probe; proven: boolean; csn?: string };

/**
 * Has the change reached this replica? First through its watcher (entryCSN, no bind at all);
 * without one, by binding the previous password once: a replica still accepting it has not
 * received the change (no failed bind), one refusing it has, at the cost of that one failed
 * bind, which is then the only one (it proves arrival, so the new password is tried at once
 * and ends the streak). Without the previous password (a resumed run) nothing is asked here
 * and the guard paces binds with the new one.
 */
async function replicationCheck(state: LdapTargetState, index: number, client: Client, change: LastChange): Promise<ReplicationCheck> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  const seen = await checkArrival(state, index, change);
  if (seen.state === 'lagging') {
    return { probe: { name: 'replication', outcome: 'fail', ms: ms(), detail: seen.detail }, verdict: 'rejected', why: 'not run: waiting for replication' };
  }
  if (seen.state === 'arrived') return { probe: { name: 'replication', outcome: 'pass', ms: ms(), detail: seen.detail }, proven: true, csn: seen.csn };
  const from = change.from;
  if (!from || change.fromGone.has(index)) return { proven: false };
  const previous = await bindWithPolicy(client, state.config.bindDn, from.value, state.scrub);
  state.recordBind(index, from, previous.ok, previous.failure);
  if (previous.ok) {
    const detail = `still accepts the previous password ${from.fingerprint}: the change has not reached this server yet`;
    return { probe: { name: 'replication', outcome: 'fail', status: 0, ms: previous.ms, detail }, verdict: 'rejected', why: 'not run: waiting for replication' };
  }
  const failure = previous.failure!;
  if (failure.kind !== 'rejected') {
    return { probe: { name: 'replication', outcome: 'fail', status: failure.status, ms: previous.ms, detail: failure.detail }, verdict: verdictOfFailure(failure), why: 'not run' };
  }
  change.fromGone.add(index);
  if (previous.ppolicy?.errorName === 'accountLocked') {
    // Locked: every password gets 49 here, so this proves nothing and the new one would fail too.
    const detail = `${failure.detail}: the account is locked on this server; an admin must unlock it (delete pwdAccountLockedTime)`;
    return { probe: { name: 'replication', outcome: 'fail', status: failure.status, ms: previous.ms, detail }, verdict: 'rejected', why: 'not run: the account is locked here' };
  }
  const detail = `the previous password ${from.fingerprint} is rejected: the change has arrived`;
  return { probe: { name: 'replication', outcome: 'pass', status: failure.status, ms: previous.ms, detail }, proven: true };
}

/**
 * The negative probe: one bind with the secret on this server, which must fail with 49. A
 * server that already refused this password since provkey's last change (the replication
 * check above) is not asked again: that 49 is the proof, and a second bind would be a second
 * failure counted toward pwdMaxFailure.
 */
async function rejectOn(state: LdapTargetState, index: number, secret: SecretInUse): Promise<ServerResult> {
  const seen = state.seenRejecting(index, secret.fingerprint);
  if (seen) {
    const detail = `${seen.detail} at ${seen.at}, since provkey's last change: not bound again (each failed bind counts toward pwdMaxFailure)`;
    return { verdict: 'rejected', probes: [{ name: 'bind', outcome: 'pass', status: seen.status, ms: 0, detail }] };
  }
  const server = state.setup.servers[index]!;
  const connection = await state.connector.open(server);
  const probes: Probe[] = [probeConnect(connection, server.url)];
  if (!connection.ok) return { verdict: verdictOfFailure(connection.failure), probes: [...probes, skipped('bind', 'not run: no connection')] };
  try {
    const bind = await bindWithPolicy(connection.client, state.config.bindDn, secret.value, state.scrub);
    state.recordBind(index, secret, bind.ok, bind.failure);
    const judged = judgeBind(bind, 'reject');
    probes.push(judged.probe);
    return { verdict: judged.verdict, probes };
  } finally {
    await closeQuietly(connection.client);
  }
}
