import { BerWriter, type Client, type Control } from 'ldapts';

/** RFC 3062 LDAP Password Modify extended operation, and RFC 4532 Who am I?. */

export const PASSWORD_MODIFY_OID = '1.3.6.1.4.1.4203.1.11.1';
export const WHOAMI_OID = '1.3.6.1.4.1.4203.1.11.3';

export interface PasswordModifyRequest {
  /** userIdentity: the account's DN. Omitted, the server changes the bound identity's password. */
  user?: string;
  /** oldPasswd: sent on a self change (required by pwdSafeModify). */
  oldPassword?: string;
  /**
   * newPasswd: always sent. Without it the server generates a password and returns it in a
   * BER value that is easy to mangle; provkey only ever sets values it generated and stored.
   */
  newPassword: string;
}

/**
 * PasswdModifyRequestValue ::= SEQUENCE {
 *   userIdentity [0] OCTET STRING OPTIONAL, oldPasswd [1] OCTET STRING OPTIONAL, newPasswd [2] OCTET STRING OPTIONAL }
 */
export function encodePasswordModifyRequest(request: PasswordModifyRequest): Buffer {
  const writer = new BerWriter();
  writer.startSequence();
  if (request.user !== undefined) writer.writeString(request.user, 0x80);
  if (request.oldPassword !== undefined) writer.writeString(request.oldPassword, 0x81);
  writer.writeString(request.newPassword, 0x82);
  writer.endSequence();
  return writer.buffer;
}

/** Sends the request on a bound connection; throws what ldapts throws (a ResultCodeError with .code). */
export async function passwordModify(client: Client, request: PasswordModifyRequest, controls: Control[] = []): Promise<void> {
  await client.exop(PASSWORD_MODIFY_OID, encodePasswordModifyRequest(request), controls);
}

/** The authorization identity of the connection: "dn:cn=provisioner,…", or "" when anonymous. */
export async function whoAmI(client: Client): Promise<string> {
  const result = await client.exop(WHOAMI_OID);
  return result.value ?? '';
}
