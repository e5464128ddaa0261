// The Samba harness's count of failed binds the DC itself counted toward lockoutThreshold
// (startSamba({ countFailedBinds: true }), from its DSDB audit log), which the fault matrix's
// lockout invariant stands on: it must see a failure a later success hid from badPwdCount, and
// must not count a bind with a previous password (AD's n-2 rule).

import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { replace, startSamba, type SambaServer } from '../harness/servers/samba.ts';

let dc: SambaServer;
beforeAll(async () => {
  dc = await startSamba({ countFailedBinds: true });
});
afterAll(async () => {
  await dc?.stop();
});

const password = () => `Pk-${randomBytes(18).toString('base64url')}`;

it('counts each failure the DC counted, also those a success reset in badPwdCount; none for the previous password', async () => {
  const first = password();
  const dn = await dc.createUser('svc-counted', first);
  const other = await dc.createUser('svc-other', password());
  const mark = await dc.countedFailures(dn);
  expect((await dc.bindCode(dn, password())).code).toBe(49);
  expect((await dc.bindCode(other, password())).code).toBe(49);
  expect(await dc.countedFailures(dn)).toBe(mark + 1);
  expect((await dc.bindCode(dn, first)).code).toBe(0);
  expect((await dc.read(dn, ['badPwdCount'])).badPwdCount).toEqual(['0']);
  expect(await dc.countedFailures(dn)).toBe(mark + 1);
  const second = password();
  await dc.modify(dn, [replace('unicodePwd', [Buffer.from(`"${second}"`, 'utf16le')])]);
  expect((await dc.bindCode(dn, first)).code).toBe(49);
  expect(await dc.countedFailures(dn)).toBe(mark + 1);
  expect((await dc.bindCode(dn, password())).code).toBe(49);
  expect((await dc.bindCode(dn, password())).code).toBe(49);
  expect(await dc.countedFailures(dn)).toBe(mark + 3);
  expect(await dc.countedFailures(other)).toBe(1);
});
