import type { ApplyResult, SecretInUse } from '../target.js';
import { changePassword, lockAccount } from './account.js';
import { closeQuietly } from './connection.js';
import { bindWithPolicy } from './probes.js';
import { checkArrival, openWatchers, stopWatching } from './replication.js';
import { applyFailure } from './result-codes.js';
import { WRITE_SERVER, type LdapTargetState } from './target-state.js';

/**
 * `retire`: an account has one password, so after a set there is nothing left to retire. A
 * retire with no replacement is a revoke: the account is moved to a random password nobody
 * knows (optionally locked), and every replica is waited for.
 */

export async function retirePassword(state: LdapTargetState, change: { old: SecretInUse; current?: SecretInUse }): Promise<ApplyResult> {
  const { old } = change;
  // A "current" that is the retired value itself cannot stay in use: that is a revoke.
  const current = change.current && change.current.value !== old.value ? change.current : undefined;
  state.remember(old.value, current?.value);
  if (current) {
    return { ok: true, detail: `nothing to do: the account runs on ${current.fingerprint}, which replaced ${old.fingerprint} (one password per account)` };
  }
  const server = state.setup.servers[WRITE_SERVER]!;
  const bindDn = state.config.bindDn;
  const discard = state.throwAway();
  const reset = await state.onServer(server, async (client): Promise<ApplyResult> => {
    if (state.setup.admin) {
      const bound = await state.bindAdmin(client);
      if (!bound.ok) return bound.result;
      await state.loadPolicyOn(client, 'admin');
      const watchers = await openWatchers(state, 'admin');
      try {
        const done = await changePassword(client, { user: bindDn, newPassword: discard.value }, state.scrub);
        if (!done.ok) return applyFailure(done.failure, `admin reset of ${bindDn} on ${server.url} failed`);
        await state.changed(discard, old, { client, watchers });
        return { ok: true, detail: `admin reset of ${bindDn} to an unknown random password` };
      } finally {
        await watchers.close();
      }
    }
    const bind = await bindWithPolicy(client, bindDn, old.value, state.scrub);
    state.recordBind(WRITE_SERVER, old, bind.ok, bind.failure);
    if (!bind.ok && bind.failure!.kind === 'rejected') return { ok: true, detail: `${old.fingerprint} already does not bind (${bind.failure!.detail})` };
    if (!bind.ok) return applyFailure(bind.failure!, `bind as ${bindDn} with ${old.fingerprint} failed`);
    await state.loadPolicyOn(client, 'account');
    const watchers = await openWatchers(state, { account: old });
    try {
      const done = await changePassword(client, { user: bindDn, oldPassword: old.value, newPassword: discard.value }, state.scrub);
      if (!done.ok) return applyFailure(done.failure, `password modify (self) on ${server.url} failed`);
      await state.changed(discard, old, { client, watchers });
      return { ok: true, detail: `changed by the account itself to an unknown random password` };
    } finally {
      await watchers.close();
    }
  });
  if (!reset.ok) return reset;
  // "already does not bind" changed nothing: there is nothing to wait for.
  const lagging = state.change?.to === discard.fingerprint ? await waitForReplicas(state, discard) : [];
  const notes = [reset.detail ?? 'reset'];
  if (lagging.length) notes.push(`not yet confirmed on ${lagging.join(', ')}`);
  if (state.config.revoke.lockAccount) {
    const locked = await state.onServer(server, async (client): Promise<ApplyResult> => {
      const bound = await state.bindAdmin(client);
      if (!bound.ok) return bound.result;
      const done = await lockAccount(client, bindDn, state.scrub);
      return done.ok ? { ok: true } : applyFailure(done.failure, 'locking the account (pwdAccountLockedTime) failed');
    });
    if (!locked.ok) return { ...locked, detail: `${notes.join('; ')}; but ${locked.detail}` };
    notes.push('account locked (pwdAccountLockedTime; an admin password reset unlocks it)');
  }
  return { ok: true, detail: notes.join('; ') };
}

/**
 * After a revoke, waits (within the propagation timeout) until every other server has the
 * change, so the negative probe that follows sees it everywhere. Told by entryCSN through the
 * watchers (replication.ts), without a bind; where there is no watcher, by binding the
 * throw-away password, paced by the bind guard.
 */
async function waitForReplicas(state: LdapTargetState, secret: SecretInUse): Promise<string[]> {
  const deadline = Date.now() + state.setup.propagationTimeoutMs;
  const change = state.change!;
  const lagging: string[] = [];
  for (let index = 1; index < state.setup.servers.length; index++) {
    const server = state.setup.servers[index]!;
    let arrived = false;
    while (!arrived && Date.now() < deadline) {
      const seen = await checkArrival(state, index, change);
      if (seen.state === 'arrived') {
        arrived = true;
        change.confirmed.add(index);
        await stopWatching(change, index);
      } else if (seen.state === 'unknown' && state.guard.check(index, secret.fingerprint).ok) {
        const connection = await state.connector.open(server);
        if (connection.ok) {
          const bind = await bindWithPolicy(connection.client, state.config.bindDn, secret.value, state.scrub);
          await closeQuietly(connection.client);
          state.recordBind(index, secret, bind.ok, bind.failure);
          arrived = bind.ok;
          if (arrived) change.confirmed.add(index);
        }
      }
      if (!arrived) await sleep(Math.min(250, Math.max(0, deadline - Date.now())));
    }
    if (!arrived) lagging.push(server.url);
  }
  return lagging;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
