import type { ConnectionTest, Probe, SecretInUse, TestOptions, Verdict } from '../target.js';
import { closeQuietly } from './connection.js';
import { bindWithPolicy, combineVerdicts, judgeBind, probeConnect, probeSearch, probeWhoami, skipped, verdictOfFailure } from './probes.js';
import { WRITE_SERVER, type LdapTargetState } from './target-state.js';

/**
 * The LDAP target's connection test, on every listed server at once: accept (connect, bind,
 * Who am I?, a search under searchBase; a replica still taking the previous password is
 * reported as lagging, at no failed-bind cost) or reject (one bind that must fail with 49).
 */

type ServerResult = { verdict: Verdict; probes: Probe[] };

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
  if (options.write && options.expect === 'accept') {
    probes.push({
      name: 'write',
      outcome: 'unsupported',
      ms: 0,
      detail: 'the ldap target has no write probe; bind, Who am I? and the search under searchBase are its proof',
    });
  }
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
    // A replica still accepting the previous password has not received the change yet. Asking
    // it that way costs no failed bind, where polling it with the new password would.
    const change = state.change;
    if (change && change.to === secret.fingerprint && change.from && !change.confirmed.has(index) && !change.fromGone.has(index)) {
      const previous = await bindWithPolicy(client, bindDn, change.from.value, state.scrub);
      if (previous.ok) {
        state.guard.succeeded(index);
        probes.push({
          name: 'replication',
          outcome: 'fail',
          status: 0,
          ms: previous.ms,
          detail: `still accepts the previous password ${change.from.fingerprint}: the change has not reached this server yet`,
        });
        return { verdict: 'rejected', probes: [...probes, ...notRun('not run: waiting for replication')] };
      }
      if (previous.failure!.kind !== 'rejected') {
        probes.push({ name: 'replication', outcome: 'fail', status: previous.failure!.status, ms: previous.ms, detail: previous.failure!.detail });
        return { verdict: verdictOfFailure(previous.failure!), probes: [...probes, ...notRun('not run')] };
      }
      change.fromGone.add(index);
      state.guard.failed(index, change.from.fingerprint);
      probes.push({ name: 'replication', outcome: 'pass', status: 49, ms: previous.ms, detail: `the previous password ${change.from.fingerprint} is rejected: the change has arrived` });
    }
    const gate = state.guard.check(index, secret.fingerprint);
    if (!gate.ok) {
      probes.push({ name: 'bind', outcome: 'fail', ms: 0, detail: gate.reason });
      return { verdict: 'rejected', probes: [...probes, ...notRun('not run')] };
    }
    const bind = await bindWithPolicy(client, bindDn, secret.value, state.scrub);
    state.recordBind(index, secret, bind.ok, bind.failure);
    const judged = judgeBind(bind, 'accept');
    probes.push(judged.probe);
    if (!bind.ok) return { verdict: judged.verdict, probes: [...probes, ...notRun('not run: the bind failed')] };
    if (change && change.to === secret.fingerprint) change.confirmed.add(index);
    probes.push(await probeWhoami(client, bindDn, state.scrub));
    probes.push(await probeSearch(client, searchBase, searchFilter, state.scrub));
    if (index === WRITE_SERVER && bind.ppolicy?.errorName !== 'changeAfterReset') await state.loadPolicyOn(client, 'account');
    return { verdict: 'accepted', probes };
  } finally {
    await closeQuietly(client);
  }
}

/** The negative probe: one bind with the secret on this server, which must fail with 49. */
async function rejectOn(state: LdapTargetState, index: number, secret: SecretInUse): Promise<ServerResult> {
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
