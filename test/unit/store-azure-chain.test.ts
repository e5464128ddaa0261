import { describe, expect, it } from 'vitest';
import { chainNodeOf, resolveChain, ROOT, type ChainNode } from '../../src/stores/azure/chain.js';
import { decodeKeyName, encodeKeyName, keyOfStateSecret, secretNames } from '../../src/stores/azure/names.js';

const node = (versionId: string, createdOn: number, seq: number, parent: string): ChainNode => ({ versionId, createdOn, seq, parent });

describe('azure state chain: one fork rule every reader applies', () => {
  it('follows parent links by provkey sequence, whatever order the versions are listed in', () => {
    const nodes = [node('c', 5, 3, 'b'), node('a', 5, 1, ROOT), node('b', 5, 2, 'a')];
    expect(resolveChain(nodes).map((n) => n.versionId)).toEqual(['a', 'b', 'c']);
    expect(resolveChain([...nodes].reverse()).map((n) => n.versionId)).toEqual(['a', 'b', 'c']);
  });

  it('a fork goes to the earliest createdOn second, then the smaller version id', () => {
    const base = node('a', 1, 1, ROOT);
    expect(resolveChain([base, node('ff', 2, 2, 'a'), node('00', 3, 2, 'a')]).at(-1)?.versionId).toBe('ff');
    expect(resolveChain([base, node('ff', 2, 2, 'a'), node('0e', 2, 2, 'a')]).at(-1)?.versionId).toBe('0e');
  });

  it('a dead branch is never followed, even when it grew longer', () => {
    // "b1" and "b2" forked from "a" in the same second; "b1" wins; "b2" has a child, which is ignored.
    const nodes = [node('a', 1, 1, ROOT), node('b2', 2, 2, 'a'), node('c-of-b2', 3, 3, 'b2'), node('b1', 2, 2, 'a')];
    expect(resolveChain(nodes).map((n) => n.versionId)).toEqual(['a', 'b1']);
  });

  it('ignores a version with a wrong sequence or without provkey tags', () => {
    expect(resolveChain([node('a', 1, 1, ROOT), node('b', 2, 5, 'a')]).map((n) => n.versionId)).toEqual(['a']);
    expect(chainNodeOf('ABC', new Date(1500), { 'provkey-seq': '1', 'provkey-parent': 'root' })).toEqual(node('abc', 1, 1, ROOT));
    expect(chainNodeOf('abc', new Date(1500), {})).toBeUndefined();
    expect(chainNodeOf('abc', undefined, { 'provkey-seq': '1', 'provkey-parent': 'root' })).toBeUndefined();
  });
});

describe('azure secret names: a reversible map onto ^[0-9a-zA-Z-]{1,127}$', () => {
  it.each(['entra-scim', 'a.b_c-d', 'x--y', 'a-', 'ldap.svc_1'])('round-trips %s', (key) => {
    const encoded = encodeKeyName(key);
    expect(encoded).toMatch(/^[0-9a-z-]+$/);
    expect(decodeKeyName(encoded)).toBe(key);
    expect(keyOfStateSecret('pk-', secretNames('pk-', key).state)).toBe(key);
    // Key Vault may hand the name back in another case.
    expect(keyOfStateSecret('PK-', secretNames('pk-', key).state.toUpperCase())).toBe(key);
  });

  it('a value secret is never taken for a state secret, nor one key for another', () => {
    expect(keyOfStateSecret('pk-', secretNames('pk-', 'app').value)).toBeUndefined();
    expect(secretNames('pk-', 'a-state').value).not.toBe(secretNames('pk-', 'a').state);
    expect(decodeKeyName('a-x')).toBeUndefined();
  });

  it('refuses a key whose secret name would exceed 127 characters, naming it', () => {
    expect(() => secretNames('pk-', 'k'.repeat(120))).toThrow(/key "k+" is too long for Key Vault.*limit is 127/);
  });
});
