// applyRecordChange: the one rule both the file and the Vault store apply in `update`.

import { describe, expect, it } from 'vitest';
import type { VersionMeta } from '../../src/core/model.js';
import { applyRecordChange } from '../../src/stores/record-change.js';

type Stored = VersionMeta & { value: string | null };

const at = '2026-01-01T00:00:00.000Z';
const later = '2026-02-01T00:00:00.000Z';
const stored: Stored[] = [
  { id: '1', label: 'previous', fingerprint: 'sha256:aaaaaaaaaaaa', createdAt: at, labelledAt: at, graceUntil: later, origin: 'imported', value: 'v1' },
  { id: '2', label: 'current', fingerprint: 'sha256:bbbbbbbbbbbb', createdAt: at, labelledAt: at, origin: 'generated', value: 'v2' },
  { id: '3', label: 'pending', fingerprint: 'sha256:cccccccccccc', createdAt: at, labelledAt: at, origin: 'generated', value: null },
];
const meta = (s: Stored): VersionMeta => {
  const { value: _value, ...rest } = s;
  return rest;
};

class TestStoreError extends Error {}
const refuse = (message: string) => new TestStoreError(message);

describe('applyRecordChange', () => {
  it('takes label, labelledAt and graceUntil from the change, keeps the stored order and the fields it does not know', () => {
    const change = [
      { ...meta(stored[2]!), label: 'current' as const, labelledAt: later },
      { ...meta(stored[1]!), label: 'previous' as const, labelledAt: later, graceUntil: later },
    ];
    // Version 1 is left out: pruned.
    expect(applyRecordChange('k', stored, change, refuse)).toEqual([
      { ...stored[1], label: 'previous', labelledAt: later, graceUntil: later },
      { ...stored[2], label: 'current', labelledAt: later },
    ]);
  });

  it('drops a graceUntil the change no longer has', () => {
    const [first] = applyRecordChange('k', stored, [{ ...meta(stored[0]!), label: 'revoked', graceUntil: undefined }], refuse);
    expect(first).toEqual({ id: '1', label: 'revoked', fingerprint: 'sha256:aaaaaaaaaaaa', createdAt: at, labelledAt: at, origin: 'imported', value: 'v1' });
    expect(first).not.toHaveProperty('graceUntil');
  });

  it.each([
    ['an unknown id', [{ ...meta(stored[0]!), id: '9' }], 'update of k names version 9, which does not exist'],
    ['a duplicate id', [meta(stored[0]!), meta(stored[0]!)], 'update of k names version 1 twice'],
    ['a changed fingerprint', [{ ...meta(stored[0]!), fingerprint: 'sha256:000000000000' }], 'update of k may not change the fingerprint of version 1'],
    ['a changed createdAt', [{ ...meta(stored[1]!), createdAt: later }], 'update of k may not change the createdAt of version 2'],
    ['a changed origin', [{ ...meta(stored[1]!), origin: 'imported' as const }], 'update of k may not change the origin of version 2'],
  ])('refuses %s with the adapter\'s own error', (_what, change, message) => {
    expect(() => applyRecordChange('k', stored, change, refuse)).toThrow(new TestStoreError(message));
    expect(() => applyRecordChange('k', stored, change, refuse)).toThrow(TestStoreError);
  });

  it('does not modify what it was given', () => {
    const before = structuredClone(stored);
    applyRecordChange('k', stored, [{ ...meta(stored[0]!), label: 'revoked' }], refuse);
    expect(stored).toEqual(before);
  });
});
