import { describe, expect, it } from 'vitest';
import { generateSecret } from '../../src/core/keygen.ts';
import { TokenFinder } from '../../src/scan/find-tokens.ts';
import { scanExitCode, type Finding } from '../../src/scan/scan.ts';
import { parseSize } from '../../src/cli/commands/scan.ts';

const token = (prefix = 'pk', randomLength = 43) => generateSecret({ type: 'token', prefix, randomLength, allowWeak: true });

describe('TokenFinder', () => {
  it('finds valid tokens with line and column, and never a look-alike with a bad checksum', () => {
    const a = token();
    const b = token('acme', 8);
    const finder = new TokenFinder(['pk', 'acme']);
    // Every single-character change of the last six (the checksum) or of the body breaks it.
    const broken = [...a].map((c, i) => a.slice(0, i) + (c === 'Z' ? 'Y' : 'Z') + a.slice(i + 1)).filter((t) => t !== a && /^pk_/.test(t));
    const text = `first line\n  key: "${a}"\r\n${broken.join(' ')}\n${b},${a}\n`;
    const hits = finder.find(text);
    expect(hits.map((h) => [h.token === a ? 'a' : h.token === b ? 'b' : '?', h.line, h.column, h.prefix])).toEqual([
      ['a', 2, 9, 'pk'],
      ['b', 4, 1, 'acme'],
      ['a', 4, b.length + 2, 'pk'],
    ]);
  });

  it('a token glued to text on its left is still found; cut short or extended it is not a token', () => {
    const a = token();
    const finder = new TokenFinder(['pk']);
    const text = `x${a} ${a.slice(0, -1)} ${a}Q TOKEN_${a}`;
    expect(finder.find(text).map((h) => [h.token === a, h.column])).toEqual([
      [true, 2],
      [true, text.length - a.length + 1],
    ]);
  });

  it('the byte scanner (files) and the text scanner (git lines) find the same tokens at the same places', () => {
    const finder = new TokenFinder(['pk', 'acme', 'me']);
    const parts = [token(), token('acme', 8), 'acme_', 'pk_short', token('me'), `x${token()}`, `${token()}Z`];
    const text = Array.from({ length: 40 }, (_, i) => `${parts[i % parts.length]}${i % 3 === 0 ? '\n' : ' é '}`).join('');
    const fromText = finder.find(text);
    expect(fromText.length).toBeGreaterThan(10);
    expect(finder.findInBytes(Buffer.from(text, 'latin1'))).toEqual(fromText);
    expect(finder.findInBytes(Buffer.from('nothing here acme pk'))).toEqual([]);
  });
});

describe('scan exit codes', () => {
  const f = (label: Finding['label'], live: boolean): Finding => ({ path: 'a', line: 1, column: 1, prefix: 'pk', fingerprint: 'sha256:000000000000', key: label === 'unknown' ? null : 'k', store: label === 'unknown' ? null : 'default', inConfig: label !== 'unknown', versionId: label === 'unknown' ? null : '1', label, live });
  it('0 nothing, 1 only dead or unknown, 3 any live, a store code when a finding could not be identified', () => {
    expect(scanExitCode([], [])).toBe(0);
    expect(scanExitCode([f('revoked', false), f('unknown', false)], [])).toBe(1);
    expect(scanExitCode([f('revoked', false), f('previous', true)], [])).toBe(3);
    expect(scanExitCode([f('unknown', false)], [{ key: 'k', store: 'v', message: 'sealed', exitCode: 7 }])).toBe(7);
    expect(scanExitCode([f('current', true)], [{ key: 'k', store: 'v', message: 'sealed', exitCode: 7 }])).toBe(3);
  });
  it('--max-file-size takes binary units and refuses anything else', () => {
    expect(parseSize('10m', 'x')).toBe(10 * 1024 * 1024);
    expect(parseSize('512k', 'x')).toBe(512 * 1024);
    expect(parseSize('100', 'x')).toBe(100);
    expect(() => parseSize('ten', '--max-file-size')).toThrow(/--max-file-size: "ten" is not a size/);
    expect(() => parseSize('0', '--max-file-size')).toThrow();
  });
});
