import type { Client } from 'ldapts';
import type { Probe, Verdict } from '../target.js';
import type { Connection } from './connection.js';
import { whoAmI } from './password-modify.js';
import { normalizeDn, PasswordPolicyControl, type PasswordPolicyResponse } from './ppolicy.js';
import { classifyLdapError, describePpolicy, type LdapFailure } from './result-codes.js';

/**
 * The probes of an LDAP connection test (DESIGN.md): connect (+ StartTLS), simple bind as the
 * service account, Who am I?, a search under the provisioning base. Each is one timed step
 * with its result code; a judgement of what it means for the secret lives next to it.
 */

export type Scrub = (text: string) => string;

export function skipped(name: string, detail: string): Probe {
  return { name, outcome: 'skipped', ms: 0, detail };
}

export function probeConnect(connection: Connection, label: string): Probe {
  if (connection.ok) return { name: 'connect', outcome: 'pass', status: 0, ms: connection.ms, detail: `${label}: ${connection.detail}` };
  return { name: 'connect', outcome: 'fail', status: connection.failure.status, ms: connection.ms, detail: `${label}: ${connection.failure.detail}` };
}

/**
 * What connecting failed with, as the verdict on the secret: it was never tried. A certificate
 * provkey does not trust means the directory it meant was not reached: "unreachable".
 */
export function verdictOfFailure(failure: LdapFailure): Verdict {
  if (failure.kind === 'rejected') return 'rejected';
  if (failure.kind === 'unreachable' || failure.kind === 'tls') return 'unreachable';
  return 'error';
}

export interface BindResult {
  ok: boolean;
  failure?: LdapFailure;
  ppolicy?: PasswordPolicyResponse;
  ms: number;
}

/** One simple bind with the password policy control; never throws. */
export async function bindWithPolicy(client: Client, dn: string, password: string, scrub: Scrub): Promise<BindResult> {
  const started = performance.now();
  const control = new PasswordPolicyControl();
  try {
    await client.bind(dn, password, [control]);
    return { ok: true, ms: Math.round(performance.now() - started), ...(control.response ? { ppolicy: control.response } : {}) };
  } catch (error) {
    return {
      ok: false,
      failure: classifyLdapError(error, scrub, control.response),
      ms: Math.round(performance.now() - started),
      ...(control.response ? { ppolicy: control.response } : {}),
    };
  }
}

/** The bind probe: what the server did with the secret, judged against the expectation. */
export function judgeBind(bind: BindResult, expect: 'accept' | 'reject'): { probe: Probe; verdict: Verdict } {
  const base = { name: 'bind', ms: bind.ms };
  if (bind.ok) {
    const warning = bindWarning(bind.ppolicy);
    if (expect === 'reject') {
      return { verdict: 'accepted', probe: { ...base, outcome: 'fail', status: 0, detail: 'the server still accepts this password' } };
    }
    if (bind.ppolicy?.graceAuthNsRemaining !== undefined) {
      // Accepted, but only on a grace login: every test would use one more up.
      return { verdict: 'accepted', probe: { ...base, outcome: 'fail', status: 0, detail: warning! } };
    }
    return { verdict: 'accepted', probe: { ...base, outcome: 'pass', status: 0, ...(warning ? { detail: warning } : {}) } };
  }
  const failure = bind.failure!;
  const verdict = verdictOfFailure(failure);
  if (expect === 'reject' && verdict === 'rejected') {
    return { verdict, probe: { ...base, outcome: 'pass', status: failure.status, detail: failure.detail } };
  }
  return { verdict, probe: { ...base, outcome: 'fail', status: failure.status, detail: failure.detail } };
}

function bindWarning(ppolicy: PasswordPolicyResponse | undefined): string | undefined {
  if (!ppolicy) return undefined;
  if (ppolicy.graceAuthNsRemaining !== undefined) {
    return `the password has EXPIRED (pwdMaxAge): this bind used a grace login, ${ppolicy.graceAuthNsRemaining} left; rotate now`;
  }
  if (ppolicy.errorName === 'changeAfterReset') {
    return 'bound, but the account must change its password first (pwdReset after an admin reset, pwdMustChange): searches are refused until it does';
  }
  if (ppolicy.timeBeforeExpiration !== undefined) {
    return `the password expires in ${formatSeconds(ppolicy.timeBeforeExpiration)} (pwdMaxAge)`;
  }
  return describePpolicy(ppolicy);
}

function formatSeconds(seconds: number): string {
  if (seconds >= 86_400) return `${Math.floor(seconds / 86_400)}d`;
  if (seconds >= 3600) return `${Math.floor(seconds / 3600)}h`;
  if (seconds >= 60) return `${Math.floor(seconds / 60)}m`;
  return `${seconds}s`;
}

/** RFC 4532: the server must see the bind as the service account, not as someone it maps it to. */
export async function probeWhoami(client: Client, bindDn: string, scrub: Scrub): Promise<Probe> {
  const started = performance.now();
  try {
    const identity = await whoAmI(client);
    const ms = Math.round(performance.now() - started);
    const dn = identity.replace(/^dn:/i, '');
    if (identity.toLowerCase().startsWith('dn:') && normalizeDn(dn) === normalizeDn(bindDn)) {
      return { name: 'whoami', outcome: 'pass', status: 0, ms, detail: identity };
    }
    return { name: 'whoami', outcome: 'fail', status: 0, ms, detail: `the server sees this bind as "${identity || '(anonymous)'}", not as bindDn ${bindDn}` };
  } catch (error) {
    const failure = classifyLdapError(error, scrub);
    const ms = Math.round(performance.now() - started);
    // Who am I? is optional (RFC 4532); a server without it is reported, not failed.
    if (failure.status === 2 || failure.status === 53) {
      return { name: 'whoami', outcome: 'unsupported', status: failure.status, ms, detail: `Who am I? is not supported (${failure.detail})` };
    }
    return { name: 'whoami', outcome: 'fail', status: failure.status, ms, detail: failure.detail };
  }
}

/**
 * A search under the provisioning base (size limit 1): what the integration does next. This is
 * what catches an account that can bind but not work (pwdMustChange after an admin reset, an
 * ACL that lost the base).
 */
export async function probeSearch(client: Client, base: string, filter: string, scrub: Scrub): Promise<Probe> {
  const started = performance.now();
  try {
    const result = await client.search(base, { scope: 'sub', filter, sizeLimit: 1, attributes: ['1.1'] });
    const ms = Math.round(performance.now() - started);
    const found = result.searchEntries.length;
    return {
      name: 'search',
      outcome: 'pass',
      status: 0,
      ms,
      detail: found > 0 ? `${base}: entries visible` : `${base}: no entry matches ${filter} (the account may not see the base)`,
    };
  } catch (error) {
    const failure = classifyLdapError(error, scrub);
    const ms = Math.round(performance.now() - started);
    let detail = `${base}: ${failure.detail}`;
    if (failure.status === 32) detail = `${base}: 32 noSuchObject: searchBase does not exist or the account cannot see it (ACL)`;
    if (failure.status === 50) detail = `${base}: ${failure.detail}${/restricted/i.test(failure.detail) ? ' (the account must change its password after an admin reset: pwdMustChange)' : ''}`;
    return { name: 'search', outcome: 'fail', status: failure.status, ms, detail };
  }
}

/**
 * One verdict for all servers. Accepting needs every server; for a rejection, one server that
 * still accepts is what matters.
 */
export function combineVerdicts(verdicts: Verdict[], expect: 'accept' | 'reject'): Verdict {
  if (verdicts.every((v) => v === 'accepted')) return 'accepted';
  if (verdicts.every((v) => v === 'rejected')) return 'rejected';
  if (expect === 'reject' && verdicts.includes('accepted')) return 'accepted';
  if (verdicts.includes('error')) return 'error';
  if (verdicts.includes('unreachable')) return 'unreachable';
  return 'rejected';
}
