import type { ApplyResult, SecretInUse } from '../target.js';
import { adminRestore } from './apply.js';
import { bindWithPolicy } from './probes.js';
import { applyFailure } from './result-codes.js';
import { WRITE_SERVER, type LdapTargetState } from './target-state.js';

/**
 * `rollback`: puts the current password back after a failed rotation (an admin reset), or,
 * under `rollback: keep-new`, keeps the new one when the directory would refuse the old one
 * back (see docs/ldap.md).
 */

/**
 * What `rollback` returns under `rollback: keep-new` when the account keeps the new password:
 * the directory would refuse the old one back (pwdInHistory), and the new one binds. The
 * engine must then keep `next` as current instead of verifying `current` (see docs/ldap.md).
 */
export type KeptNextResult = Extract<ApplyResult, { ok: true }> & { kept: 'next'; detail: string };

export function keptNext(result: ApplyResult): result is KeptNextResult {
  return result.ok && result.kept === 'next';
}

export async function rollbackPassword(state: LdapTargetState, change: { next: SecretInUse; current?: SecretInUse }): Promise<ApplyResult> {
  const { next, current } = change;
  state.remember(next.value, current?.value);
  if (!current) {
    return { ok: true, detail: `nothing to restore: there was no previous version; ${next.fingerprint} stays on the account and is disabled in the store` };
  }
  if (state.neverTook(next.fingerprint)) {
    return { ok: true, detail: `nothing to undo: the directory never took ${next.fingerprint}; ${current.fingerprint} is unchanged` };
  }
  if (state.config.rollback === 'keep-new') {
    const decided = await keepNewIfItBinds(state, next, current);
    if (decided) return decided;
  }
  if (!state.setup.admin) {
    return {
      ok: false,
      reason: 'rejected',
      detail: `neither ${next.fingerprint} nor ${current.fingerprint} binds as ${state.config.bindDn}, and there is no admin credential (apply.adminDn) to put ${current.fingerprint} back`,
    };
  }
  const server = state.setup.servers[WRITE_SERVER]!;
  return state.onServer(server, async (admin) => {
    const bound = await state.bindAdmin(admin);
    if (!bound.ok) return bound.result;
    return adminRestore(state, admin, current, next);
  });
}

/**
 * rollback: keep-new. A password history refuses the old password as a self change; if the
 * new one binds and is fully usable, it stays (the engine keeps it as current). If it does not
 * bind but the old one still does, the set never took effect and there is nothing to undo.
 * Otherwise undefined: fall back to an admin reset.
 */
async function keepNewIfItBinds(state: LdapTargetState, next: SecretInUse, current: SecretInUse): Promise<ApplyResult | undefined> {
  const server = state.setup.servers[WRITE_SERVER]!;
  return state.onServer(
    server,
    async (client): Promise<ApplyResult | undefined> => {
      const withNext = await bindWithPolicy(client, state.config.bindDn, next.value, state.scrub);
      state.recordBind(WRITE_SERVER, next, withNext.ok, withNext.failure);
      // No answer is no verdict: never report "neither binds" for a server that did not answer.
      if (!withNext.ok && withNext.failure!.kind !== 'rejected') return applyFailure(withNext.failure!, `bind with ${next.fingerprint} on ${server.url}`);
      if (withNext.ok && withNext.ppolicy?.errorName !== 'changeAfterReset') {
        const kept: KeptNextResult = {
          ok: true,
          kept: 'next',
          detail: `kept ${next.fingerprint} (rollback: keep-new): it binds on ${server.url}, and the directory would refuse ${current.fingerprint} back as a self change (pwdInHistory)`,
        };
        return kept;
      }
      const withCurrent = await bindWithPolicy(client, state.config.bindDn, current.value, state.scrub);
      state.recordBind(WRITE_SERVER, current, withCurrent.ok, withCurrent.failure);
      if (withCurrent.ok) return { ok: true, detail: `${next.fingerprint} is not in effect and ${current.fingerprint} still binds: nothing to undo` };
      if (withCurrent.failure!.kind !== 'rejected') return applyFailure(withCurrent.failure!, `bind with ${current.fingerprint} on ${server.url}`);
      return undefined;
    },
    (failure) => applyFailure(failure, `cannot connect to ${server.url}`),
  );
}
