import { Attribute, Change, type Client } from 'ldapts';
import { classifyAdError, type AdFailure } from './ad-errors.js';

/**
 * Password writes on Active Directory, on a bound LDAPS or StartTLS connection: AD has no
 * RFC 3062; the password is the write-only unicodePwd attribute, its value the password in
 * double quotes, UTF-16LE. A self change is one modify deleting the old value and adding the
 * new one (the old one proves the caller knows it: AD checks the policy, history and
 * minPwdAge); an admin reset is a replace (needs "Reset password" rights; AD checks length
 * and complexity, Samba not the history).
 */

export type AdStep = { ok: true } | { ok: false; failure: AdFailure };

type Scrub = (text: string) => string;

export function unicodePwd(password: string): Buffer {
  return Buffer.from(`"${password}"`, 'utf16le');
}

export async function changeOwnPassword(client: Client, accountDn: string, oldPassword: string, newPassword: string, scrub: Scrub): Promise<AdStep> {
  try {
    await client.modify(accountDn, [
      new Change({ operation: 'delete', modification: new Attribute({ type: 'unicodePwd', values: [unicodePwd(oldPassword)] }) }),
      new Change({ operation: 'add', modification: new Attribute({ type: 'unicodePwd', values: [unicodePwd(newPassword)] }) }),
    ]);
    return { ok: true };
  } catch (error) {
    return { ok: false, failure: classifyAdError(error, scrub) };
  }
}

export async function resetPassword(client: Client, accountDn: string, newPassword: string, scrub: Scrub): Promise<AdStep> {
  try {
    await client.modify(accountDn, [new Change({ operation: 'replace', modification: new Attribute({ type: 'unicodePwd', values: [unicodePwd(newPassword)] }) })]);
    return { ok: true };
  } catch (error) {
    return { ok: false, failure: classifyAdError(error, scrub) };
  }
}

/** Clears a lockout: a reset does not (lockoutTime stays), `lockoutTime: 0` does. */
export async function unlockAccount(client: Client, accountDn: string, scrub: Scrub): Promise<AdStep> {
  try {
    await client.modify(accountDn, [new Change({ operation: 'replace', modification: new Attribute({ type: 'lockoutTime', values: ['0'] }) })]);
    return { ok: true };
  } catch (error) {
    return { ok: false, failure: classifyAdError(error, scrub) };
  }
}

/** One simple bind; never throws. A failed bind leaves the connection anonymous and usable. */
export async function adBind(client: Client, dn: string, password: string, scrub: Scrub): Promise<{ ok: boolean; ms: number; failure?: AdFailure }> {
  const started = performance.now();
  try {
    await client.bind(dn, password);
    return { ok: true, ms: Math.round(performance.now() - started) };
  } catch (error) {
    return { ok: false, ms: Math.round(performance.now() - started), failure: classifyAdError(error, scrub) };
  }
}
