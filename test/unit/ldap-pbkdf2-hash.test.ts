import { describe, expect, it } from 'vitest';
import { storedPasswordMatches, storedValueMatches } from '../../src/targets/ldap/password-hash.ts';

// userPassword values written by a REAL 389 Directory Server (Debian 389-ds-base 2.3.1, this
// machine's harness instance, passwordStorageScheme set to each scheme in turn, read back as
// Directory Manager). PBKDF2-SHA512 is the default of a fresh 2.3 instance. The passwords are
// throw-away test values. test/integration/ldap-389-target.test.ts checks fresh ones live.
const RECORDED: Array<[scheme: string, password: string, stored: string]> = [
  ["PBKDF2-SHA512", "Pk-abcdefghijklmnop1", "{PBKDF2-SHA512}10000$+T4L4sFe6kRcky9xvaVSPOj1WQBgHVTx$Lbw8mF7qutWE+rWFVbiSt7yUPT1zPYCWk7b7zp82s6D7K7fnhGC8Qmri8NaSVmAYF4/j6NuI+UfI/tLjgxQqqA=="],
  ["PBKDF2-SHA512", "Pk9-Üñíçødé-pässwörd-xx", "{PBKDF2-SHA512}10000$ZEocNVx/BIS0bIBNt1BEyi2+pTKQhKHN$guD7Jaa6UqHvAKPWgfHKtoWsdRL6YmSZwpykqBIBuEEe1e1WpoYFy4rlbsGq8Ft3t8jIBJarlpcjw0uVu2REig=="],
  ["PBKDF2-SHA256", "Pk-abcdefghijklmnop1", "{PBKDF2-SHA256}10000$swARx6AUj5wYXLA7Md1L1z8DW7WBog1b$csBXTSsGFVjppu+D0GJtYVmxjRgAeXpRzZDpHcnUuwM="],
  ["PBKDF2-SHA256", "Pk9-Üñíçødé-pässwörd-xx", "{PBKDF2-SHA256}10000$qWyv0oNXvHNKP2yIBJckvbuWjgCsX9PB$8ddtze+flb+xR+//T3vXIIucuOMDQVIruzxxJZrZL/c="],
  ["PBKDF2-SHA1", "Pk-abcdefghijklmnop1", "{PBKDF2-SHA1}10000$J/pjyF/I3/fQpDtZZZUtBeOBYLX+Yjw5$CE/4BrSj8hhxJLDInJnI/Mpb3tE="],
  ["PBKDF2-SHA1", "Pk9-Üñíçødé-pässwörd-xx", "{PBKDF2-SHA1}10000$n80K5aj3/Eb/fqOhpi1EDfplNQMswUvw$DdWXsxXn4oaL1v81iJZ26XPj9dM="],
  ["PBKDF2", "Pk-abcdefghijklmnop1", "{PBKDF2-SHA1}10000$jJdy+clOZkb8QLIbZTVHWXCZpcEx9Umr$V21kPxBDUt/v6w69NxSdlSp1Y8U="],
  ["PBKDF2", "Pk9-Üñíçødé-pässwörd-xx", "{PBKDF2-SHA1}10000$pvNpA+1p3E/Bhk/8jo65TR7RKEAd0x8n$d/5K9HXIYwfoY/LV5oRwROQhTVk="],
  ["PBKDF2_SHA256", "Pk-abcdefghijklmnop1", "{PBKDF2_SHA256}AAALuHbXCH60ceO5Lv1Q7/qcspekUvLNVzAjaUmmJHz3ckg2wIuI32w/wwjTSeo7cUeWjllSdhj6NDPznpjohlivBs6ijT2sZSnLEWgRcZmgVV3Mjhbk2SiiWfDSo+8r7+FOzuHsD2DFFy3HLIVCI+w5a77qtbft4RAjTaEMVMYXKVj13u3xqTupPzM31YYlRBT3rguWML96y0+jawynagKgLEraCmHtNr0JgJ8TMsWF3b7kWuNcZ371tX09wEUyDS1lWK0z3I6xY3fettnOeDqJu4anCUNI5aOb94oe1v/4eoyAx3sRpWw3daqQDVvSK+bh/LY/DDxAXByyNGC34TdsX6qSKxKFjGTwIEtueRQ/mraIWwo4Wt6nQjuHKsrXG4oBmXhysTyUT+1JQVddtwVdUXWzITPemBN8ZM7MCYiADov5"],
  ["PBKDF2_SHA256", "Pk9-Üñíçødé-pässwörd-xx", "{PBKDF2_SHA256}AAALuArJ/7V74N9jKrfpx23MeLVtWpJj83xvW06PR2UIQrdm9+b6n4z+59ftJ93v07pcJvy1Gs8Qt3AaKfrm4kwYcgI0nH6j6h8BMyF4T5d6cShlncHfQ0TBFTphlM2PclWDO34oEHL4clqlL964WerWGL2T8NkmBnnAGRLxbYEhEtzFDvauBA3m3jXQJOrWBBVom8m6MeIe6QXta6aG7RgzzzSSN8irBd5dX83VUoh7QWa2UZPGlrvnmCHhrJ9aXNZIWkXugpu8EiUzCLYrxcQn63o/hXrGGphdW4OT03tBX7W6UxmrGOq00k2LVPHrNt0p7IvcHTqBsXrFS1jZORym8/1VG7WLJEfuMonfTajYz8YW7xl1xmulxuNJpCLiUmKeiU6aSVXrE9RvN1NNiUddnOoBS332bjbHLLSWQmmOHcdI"],
  ["SSHA512", "Pk-abcdefghijklmnop1", "{SSHA512}t5wovBrQ/74D3e5KNNmcp5/aAV3fMw2LPPMKSpThaPP4iR7yc936VKiZwdEry9bMU7OP25iWVNUkWW6gkbEeIsOUTYp+GwLc"],
  ["SSHA512", "Pk9-Üñíçødé-pässwörd-xx", "{SSHA512}a70f4aubHa+XZbsQxQWnbikPooxczLUSRjeOSEW67o6ulVM0lS1jRNYHBhdtkLrrUeeRevfPzXU5PbuDXOMv7RlBdOU42wSa"],
];

describe('userPassword PBKDF2 schemes (389-DS default), checked locally', () => {
  it.each(RECORDED)('%s: the password the server hashed matches, any other does not', (_scheme, password, stored) => {
    expect(storedValueMatches(password, stored)).toBe(true);
    expect(storedValueMatches(`${password}x`, stored)).toBe(false);
    expect(storedValueMatches(password.slice(0, -1), stored)).toBe(false);
    expect(storedPasswordMatches(password, [stored])).toBe(true);
  });

  it('hashes the UTF-8 bytes of the password (a non-ASCII password recorded from the server)', () => {
    const [, password, stored] = RECORDED.find(([s, p]) => s === 'PBKDF2-SHA512' && /[^\x00-\x7f]/.test(p))!;
    expect(storedValueMatches(password, stored)).toBe(true);
    expect(storedValueMatches(password.normalize('NFD'), stored)).toBe(false);
  });

  it("accepts OpenLDAP/passlib's adapted base64 ('.' for '+', no padding) for the same value", () => {
    const [, password, stored] = RECORDED.find(([s, , v]) => s === 'PBKDF2-SHA512' && v.includes('+'))!;
    const ab64 = stored.replace(/\+/g, '.').replace(/=+$/, '').replace(/=+\$/, '$');
    expect(ab64).not.toBe(stored);
    expect(storedValueMatches(password, ab64)).toBe(true);
    expect(storedValueMatches(`${password}x`, ab64)).toBe(false);
  });

  it('is case-insensitive in the scheme name, as the server is', () => {
    const [, password, stored] = RECORDED.find(([s]) => s === 'PBKDF2-SHA256')!;
    expect(storedValueMatches(password, stored.replace('{PBKDF2-SHA256}', '{pbkdf2-sha256}'))).toBe(true);
  });

  it('says "cannot tell" (never a mismatch) for a malformed or too costly value', () => {
    const [, password, stored] = RECORDED.find(([s]) => s === 'PBKDF2-SHA512')!;
    const [iterations, salt, hash] = stored.slice('{PBKDF2-SHA512}'.length).split('$');
    expect(iterations).toBe('10000');
    expect(storedValueMatches(password, `{PBKDF2-SHA512}${iterations}$${salt}`)).toBeUndefined();
    expect(storedValueMatches(password, `{PBKDF2-SHA512}x$${salt}$${hash}`)).toBeUndefined();
    expect(storedValueMatches(password, `{PBKDF2-SHA512}0$${salt}$${hash}`)).toBeUndefined();
    expect(storedValueMatches(password, `{PBKDF2-SHA512}999999999$${salt}$${hash}`)).toBeUndefined();
    expect(storedValueMatches(password, `{PBKDF2-SHA512}${iterations}$${salt}$AAAA`)).toBeUndefined();
    expect(storedValueMatches(password, `{PBKDF2-SHA512}${iterations}$${salt}$${hash}!`)).toBeUndefined();
    expect(storedValueMatches(password, '{PBKDF2_SHA256}AAAA')).toBeUndefined();
    const [, legacyPassword, legacy] = RECORDED.find(([s]) => s === 'PBKDF2_SHA256')!;
    expect(storedValueMatches(legacyPassword, legacy.slice(0, -4))).toBeUndefined();
    // Another iteration count in the same value is a different hash: a mismatch, not "cannot tell".
    expect(storedValueMatches(password, `{PBKDF2-SHA512}10001$${salt}$${hash}`)).toBe(false);
  });

  it('reads the legacy {PBKDF2_SHA256} iteration count from its first four bytes (big-endian)', () => {
    const [, , legacy] = RECORDED.find(([s]) => s === 'PBKDF2_SHA256')!;
    const raw = Buffer.from(legacy.slice('{PBKDF2_SHA256}'.length), 'base64');
    expect(raw.length).toBe(324);
    expect(raw.readUInt32BE(0)).toBeGreaterThanOrEqual(2048);
  });
});
