import type { Client } from 'ldapts';
import type { ApplyResult, SecretInUse } from '../target.js';
import { changePassword, clearPasswordReset, readAccountEvidence } from './account.js';
import { storedPasswordMatches } from './password-hash.js';
import type { LdapServer } from './connection.js';
import { passwordProblem } from './ppolicy.js';
import { bindWithPolicy, type BindResult } from './probes.js';
import { openWatchers, type WatcherSet } from './replication.js';
import { applyFailure } from './result-codes.js';
import { WRITE_SERVER, type LdapTargetState } from './target-state.js';

/**
 * `set`: the new password onto the account with RFC 3062 Password Modify, as the account
 * itself (self) or as the admin, checked against the directory's policy first. Also the
 * admin reset that puts a password back (used by a failed admin set and by rollback).
 */

export async function setPassword(state: LdapTargetState, change: { next: SecretInUse; current?: SecretInUse; replace: boolean }): Promise<ApplyResult> {
  const { next, current } = change;
  state.remember(next.value, current?.value);
  // One password per account: every set replaces, whatever `replace` says.
  if (next.value === '') return state.refused(next, { ok: false, reason: 'policy', detail: `${next.fingerprint}: the password is empty` });
  if (current && current.value === next.value) {
    return state.refused(next, { ok: false, reason: 'policy', detail: `${next.fingerprint} is the current password; a change needs a new value` });
  }
  return state.config.apply.mode === 'admin' ? setAsAdmin(state, next, current) : setAsSelf(state, next, current);
}

/** RFC 3062 as the account: bind with the current password, send old and new. */
async function setAsSelf(state: LdapTargetState, next: SecretInUse, current: SecretInUse | undefined): Promise<ApplyResult> {
  if (!current) {
    return state.refused(next, {
      ok: false,
      reason: 'error',
      detail: `apply.mode self changes the password as the account itself and needs the current one: run "provkey import ${state.setup.keyName}" with the password the account has now, or use apply.mode admin`,
    });
  }
  const server = state.setup.servers[WRITE_SERVER]!;
  return state.onServer(server, async (client) => {
    const bind = await bindWithPolicy(client, state.config.bindDn, current.value, state.scrub);
    state.recordBind(WRITE_SERVER, current, bind.ok, bind.failure);
    if (!bind.ok) {
      return state.refused(next, applyFailure(bind.failure!, `bind as ${state.config.bindDn} with the current password ${current.fingerprint} failed`));
    }
    await state.loadPolicyOn(client, 'account');
    const problem = passwordProblem(next.value, state.policy);
    if (problem) return state.refused(next, { ok: false, reason: 'policy', detail: `${next.fingerprint}: ${problem}` });
    const watchers = await openWatchers(state, { account: current });
    try {
      const changed = await changePassword(client, { user: state.config.bindDn, oldPassword: current.value, newPassword: next.value }, state.scrub);
      if (!changed.ok) return state.refused(next, applyFailure(changed.failure, `password modify (self) on ${server.url} refused ${next.fingerprint}`));
      await state.changed(next, current, { client, watchers });
      if (changed.alreadyHeld) return { ok: true, detail: `the directory already holds ${next.fingerprint} on ${server.url} (nothing to change)` };
      return { ok: true, detail: `password modify as ${state.config.bindDn} on ${server.url}` };
    } finally {
      await watchers.close();
    }
  });
}

/**
 * RFC 3062 as the admin. Under pwdMustChange an admin reset leaves the account able only to
 * change its password, so provkey resets to a throw-away value and lets the account change
 * that to `next` itself: the stored version is then the account's own, fully usable password.
 */
async function setAsAdmin(state: LdapTargetState, next: SecretInUse, current: SecretInUse | undefined): Promise<ApplyResult> {
  const server = state.setup.servers[WRITE_SERVER]!;
  return state.onServer(server, async (admin) => {
    const bound = await state.bindAdmin(admin);
    if (!bound.ok) return state.refused(next, bound.result);
    await state.loadPolicyOn(admin, 'admin');
    const problem = passwordProblem(next.value, state.policy);
    if (problem) return state.refused(next, { ok: false, reason: 'policy', detail: `${next.fingerprint}: ${problem}` });
    // A resumed set whose change had already arrived: resetting again would only put `next`
    // into the history (and, under pwdMustChange, make the account's own change to it fail).
    const stored = await readAccountEvidence(admin, state.config.bindDn);
    if (stored && storedPasswordMatches(next.value, stored.passwords) === true) {
      return { ok: true, detail: `the directory already holds ${next.fingerprint} (userPassword read as ${state.setup.admin!.dn}); nothing to change` };
    }
    const watchers = await openWatchers(state, 'admin');
    try {
      return await resetAsAdmin(state, admin, next, current, watchers);
    } finally {
      await watchers.close();
    }
  });
}

/** The admin's change on its bound connection; `watchers` were opened on the replicas just before. */
async function resetAsAdmin(state: LdapTargetState, admin: Client, next: SecretInUse, current: SecretInUse | undefined, watchers: WatcherSet): Promise<ApplyResult> {
  const server = state.setup.servers[WRITE_SERVER]!;
  const bindDn = state.config.bindDn;
  // Unknown counts as TRUE: the two steps work either way; a direct reset does not.
  if (state.policy.policy.mustChange === false) {
    const reset = await changePassword(admin, { user: bindDn, newPassword: next.value }, state.scrub);
    if (!reset.ok) return state.refused(next, applyFailure(reset.failure, `admin reset of ${bindDn} on ${server.url} refused ${next.fingerprint}`));
    await state.changed(next, current, { client: admin, watchers });
    const usable = await ensureNoPendingChange(state, admin, server, next);
    if (!usable.ok) return usable;
    if (reset.alreadyHeld) return { ok: true, detail: `the directory already holds ${next.fingerprint} on ${server.url} (nothing to change)` };
    return { ok: true, detail: `admin reset by ${state.setup.admin!.dn} on ${server.url}` };
  }

  const temporary = state.throwAway();
  const reset = await changePassword(admin, { user: bindDn, newPassword: temporary.value }, state.scrub);
  if (!reset.ok) return state.refused(next, applyFailure(reset.failure, `admin reset of ${bindDn} on ${server.url} refused`));
  const own = await state.onServer(server, async (account) => {
    const bind = await bindWithPolicy(account, bindDn, temporary.value, state.scrub);
    if (!bind.ok) return applyFailure(bind.failure!, `bind as ${bindDn} with the temporary password failed`);
    state.guard.succeeded(WRITE_SERVER);
    const changed = await changePassword(account, { oldPassword: temporary.value, newPassword: next.value }, state.scrub);
    if (!changed.ok) return applyFailure(changed.failure, `the account's own change from the temporary password to ${next.fingerprint} was refused`);
    return { ok: true } as ApplyResult;
  });
  if (!own.ok) {
    // Never leave the account on a password nobody knows when the old one can be put back.
    if (!current) return { ...own, detail: `${own.detail}; the account is left on an unknown temporary password: an admin reset (provkey add or rotate, admin mode) recovers it` };
    const restored = await adminRestore(state, admin, current, next);
    if (restored.ok) return state.refused(next, { ...own, detail: `${own.detail}; ${current.fingerprint} was put back` });
    return { ...own, detail: `${own.detail}; putting ${current.fingerprint} back failed too (${restored.detail})` };
  }
  await state.changed(next, current, { client: admin, watchers });
  return { ok: true, detail: `admin reset by ${state.setup.admin!.dn} to a temporary password, then changed to ${next.fingerprint} by the account itself (pwdMustChange) on ${server.url}` };
}

/**
 * The policy said pwdMustChange is off, but a per-account policy may say otherwise: if the
 * account is asked to change its password, the admin clears pwdReset (the value is fresh and
 * known only to the store), or the apply fails with what to configure.
 */
async function ensureNoPendingChange(state: LdapTargetState, admin: Client, server: LdapServer, next: SecretInUse): Promise<ApplyResult> {
  const bind = await state.onServer(
    server,
    (account) => bindWithPolicy(account, state.config.bindDn, next.value, state.scrub),
    (failure): BindResult => ({ ok: false, failure, ms: 0 }),
  );
  state.recordBind(WRITE_SERVER, next, bind.ok, bind.failure);
  if (!bind.ok) return applyFailure(bind.failure!, `bind with ${next.fingerprint} right after the admin reset failed`);
  if (bind.ppolicy?.errorName !== 'changeAfterReset') return { ok: true };
  const cleared = await clearPasswordReset(admin, state.config.bindDn, state.scrub, state.policy.policy.maxAge);
  if (cleared.ok) return { ok: true };
  return applyFailure(cleared.failure, 'the account must change its password after the reset (pwdMustChange) and provkey cannot clear pwdReset; set passwordPolicy.mustChange: true', 'policy');
}

/** The admin puts `current` back (bypassing pwdInHistory as a password administrator) and clears pwdReset. */
export async function adminRestore(state: LdapTargetState, admin: Client, current: SecretInUse, next: SecretInUse): Promise<ApplyResult> {
  const watchers = await openWatchers(state, 'admin');
  try {
    return await restoreAsAdmin(state, admin, current, next, watchers);
  } finally {
    await watchers.close();
  }
}

async function restoreAsAdmin(state: LdapTargetState, admin: Client, current: SecretInUse, next: SecretInUse, watchers: WatcherSet): Promise<ApplyResult> {
  const bindDn = state.config.bindDn;
  const reset = await changePassword(admin, { user: bindDn, newPassword: current.value }, state.scrub);
  if (!reset.ok) {
    const refused = applyFailure(reset.failure, `admin reset of ${bindDn} back to ${current.fingerprint} refused`);
    if (reset.failure.status !== 19) return refused;
    const hint = `an admin with only "write" access is held to the password policy: give ${state.setup.admin!.dn} "manage" on userPassword to act as a password administrator`;
    return { ...refused, detail: `${refused.detail}; ${hint}` };
  }
  await state.changed(current, next, { client: admin, watchers });
  const cleared = await clearUntilAccountIsFree(state, admin, current);
  const note = cleared.ok ? '' : `; pwdReset could not be cleared (${cleared.failure.detail}), so under pwdMustChange the account must change its password before it can search`;
  if (reset.alreadyHeld) return { ok: true, detail: `the directory already holds ${current.fingerprint}: ${next.fingerprint} never replaced it, nothing to undo${note}` };
  return { ok: true, detail: `admin reset back to ${current.fingerprint} by ${state.setup.admin!.dn}${note}` };
}

/**
 * Clears pwdReset after the admin put `current` back, then proves it by the account's own bind
 * (a successful bind costs no failed bind): 389-DS may finish the reset's own update of the entry
 * after provkey's clear and bring "must change" back, so the clear is repeated while the account's
 * bind still says changeAfterReset, a bounded number of times.
 */
async function clearUntilAccountIsFree(state: LdapTargetState, admin: Client, current: SecretInUse): Promise<Awaited<ReturnType<typeof clearPasswordReset>>> {
  const server = state.setup.servers[WRITE_SERVER]!;
  let cleared = await clearPasswordReset(admin, state.config.bindDn, state.scrub, state.policy.policy.maxAge);
  for (let attempt = 0; cleared.ok && attempt < 5; attempt++) {
    const bind = await state.onServer(
      server,
      (account) => bindWithPolicy(account, state.config.bindDn, current.value, state.scrub),
      (failure): BindResult => ({ ok: false, failure, ms: 0 }),
    );
    state.recordBind(WRITE_SERVER, current, bind.ok, bind.failure);
    if (!bind.ok || bind.ppolicy?.errorName !== 'changeAfterReset') return cleared;
    cleared = await clearPasswordReset(admin, state.config.bindDn, state.scrub, state.policy.policy.maxAge);
  }
  if (!cleared.ok) return cleared;
  return { ok: false, failure: { kind: 'error', status: 'pwdReset', detail: 'the account still has to change its password after five clears of pwdReset' } };
}
