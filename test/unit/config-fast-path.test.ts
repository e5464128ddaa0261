import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseWithYamlLibrary, parseDocument } from 'yaml';
import { parseConfigText, parseLocatedConfigText } from '../../src/config/located.ts';
import { readPlainYaml } from '../../src/config/plain-yaml.ts';

// The config has two readers (src/config/plain-yaml.ts): a fast one that turns YAML straight
// into data, and the located one (the yaml library's Document) whose verdict and message
// stand whenever the fast one cannot read a config or the config is invalid. These tests hold
// the two to the same answers.
const file = path.join('/etc/provkey', 'provkey.yaml');
const outcome = (read: (text: string, file: string) => unknown, text: string): unknown => {
  try {
    return { config: read(text, file) };
  } catch (error) {
    return { error: (error as Error).message, exitCode: (error as { exitCode?: number }).exitCode };
  }
};
const target = 'target: { type: scim, url: "https://app.example.com/scim/v2", applier: { type: store } }';

describe('the fast YAML reader resolves plain scalars as the yaml library does', () => {
  // The YAML 1.2 core schema: js-yaml's own core schema would read 1_000 and 0b101 as numbers.
  const scalars = ['4', '+4', '-4', '0o17', '0x1F', '0X1F', '1_000', '0b101', '1.5', '.5', '1.', '1e3', '-1.5E-2', '.inf', '-.Inf', '+.INF', '.nan', '.NaN', 'true', 'True', 'TRUE', 'tRUE', 'yes', 'no', 'on', 'off', 'null', 'Null', 'NULL', '~', '', 'nULL', '2026-12-01', '12:30', '1:20:00', '"4"', "'true'", 'a b  c', '0777', '007', '-0', '+.5e1', 'x#y', '"a\\tb\\u00e9"', "'it''s'"];
  it.each(scalars)('%s', (scalar) => {
    const text = `value: ${scalar}\nlist: [${scalar || '~'}]\n`;
    const fast = readPlainYaml(text) as Record<string, unknown>;
    const located = parseWithYamlLibrary(text) as Record<string, unknown>;
    expect(fast).toEqual(located);
    // NaN equals NaN for toEqual; types must match too (4 is not "4").
    expect(typeof fast.value).toBe(typeof located.value);
  });

  it('folded lines, comments and nested collections read the same', () => {
    const text = [
      '# a comment',
      'c: plain text that',
      '  continues here',
      'd:',
      '  - x',
      '  - nested: { deep: [true, null] }',
      '  - { type: file, name: agent }',
      '  - [1, 2]',
      'd2: [1, "two", {three: 3}]',
      'e: "double \\"quoted\\" \\x41"',
      'f: { }',
      'g: []',
      '"quoted key": 1',
      "h: 'single ''quoted'' # not a comment'",
      'i: [a, {b: c}, "d, e"]  # a comment',
      '',
    ].join('\n');
    expect(readPlainYaml(text)).toEqual(parseWithYamlLibrary(text));
  });

  it('anchors, aliases, tags and directives are left to the located path', () => {
    for (const text of ['a: &x 1\nb: *x\n', 'a: !!str 1\n', 'a: !custom 1\n', '%YAML 1.1\n---\na: yes\n', 'a: [*x]\n', 'a: {b: *x}\n']) {
      expect(readPlainYaml(text), text).toBeUndefined();
    }
    // And what js-yaml reads otherwise (found by comparing both on random texts): a tab in the
    // indentation, text after ---, explicit keys, block scalars, a flow collection as a key.
    for (const text of ['a:\n\t b: 1\n', '---a\n', '--- #x\n---b: 1\n', '? [a]\n: 1\n', 'a: |-1\n  x\n', 'a: >\n  x\n', '[1.5]: a\n', 'a:\n  []: 1\n', 'a: {[b]: 1}\n', '{x: 1} : 2\n', 'a:\n  -   -\n  - b\n', 'a:\n  - # c\n  - b\n']) {
      expect(readPlainYaml(text), text).toBeUndefined();
    }
    // Those characters elsewhere in a value do not count.
    expect(readPlainYaml('a: "x&y"\nb: https://h/?q=1&r=2\nc: a*b\n')).toEqual({ a: 'x&y', b: 'https://h/?q=1&r=2', c: 'a*b' });
    expect(readPlainYaml('---\na: 1\n... # end\n')).toEqual({ a: 1 });
  });

  it('keys the libraries would name differently are left to the located path', () => {
    // A null key is "" for the yaml library ("null" for js-yaml); a list as a key "[ a, b ]" ("a,b").
    for (const text of ['~: 1\n', 'null: 1\n', 'a: { NULL: 1 }\n', '? [a, b]\n: 1\n', '? {a: 1}\n: 2\n', 'a: [{null: 1}]\n']) {
      expect(readPlainYaml(text), text).toBeUndefined();
    }
    expect(readPlainYaml('1: a\ntrue: b\n1.5: c\n0x10: d\n')).toEqual(parseWithYamlLibrary('1: a\ntrue: b\n1.5: c\n0x10: d\n'));
  });

  it('where js-yaml is more lenient, the located path decides: multi-line flows and quotes, glued comments', () => {
    // The yaml library refuses each of these (BAD_INDENT, MISSING_CHAR); js-yaml would read them.
    for (const text of ['keys:\n  app: {target: {type: scim,\n  url: x}}\n', 'a: [1, [2,\n3]]\n', 'a:\n  b: "x\n  y"\n', "a: 'x\ny'\n", 'a: {b: 1}#c\n', 'a: [1]#c\n', 'a: "x"#c\n', 'a: "x\\\ny"\n']) {
      expect(readPlainYaml(text), text).toBeUndefined();
    }
    // Quotes and brackets inside plain text, quoted text and comments do not count.
    const text = `a: it's\nb: "q\\"x" # it's [\nc: ["a]", 'b''c']\nd: x[1]\ne: {"k":"v"}\nf: [1, 2] # c\n`;
    expect(readPlainYaml(text)).toEqual(parseWithYamlLibrary(text));
  });

  it('what the fast reader cannot read is left to the located path (it decides nothing)', () => {
    for (const text of ['a: [\n', 'a: 1\na: 2\n', 'a: 1\n---\nb: 2\n', '\ta: 1\n', 'a: "open\n', 'a: b: c\n']) {
      expect(readPlainYaml(text), text).toBeUndefined();
    }
  });
});

describe('parseConfigText gives the answer of the located path', () => {
  const configs: [string, string][] = [
    ['a minimal key', `keys:\n  app:\n    ${target}\n`],
    ['two keys, stores, defaults, audit', `version: 1\nstores:\n  v: { type: vault, address: "https://vault.example.com", auth: { method: token, tokenFile: /etc/t } }\ndefaults: { concurrency: 8, store: default }\naudit: { path: log/audit.jsonl }\nkeys:\n  a:\n    ${target}\n    rotation: { interval: 7d, grace: 2h }\n  b:\n    store: v\n    ${target}\n`],
    ['a key in block style', 'keys:\n  app:\n    target:\n      type: scim\n      url: https://app.example.com/scim/v2\n      applier:\n        type: store\n'],
    ['an alias (the located path reads it)', `defaults: &d { concurrency: 2 }\nkeys:\n  app:\n    ${target}\n`],
    ['a number where a string goes, written like one (1_000)', `audit: { path: 1_000 }\nkeys:\n  app:\n    ${target}\n`],
    ['an empty file', ''],
    ['only a comment', '# nothing yet\n'],
    // Invalid: every message (line, column, did-you-mean) comes from the located path.
    ['an unknown field', `keys:\n  app:\n    rotaton: { interval: 30d }\n    ${target}\n`],
    ['a bad duration', `keys:\n  app:\n    rotation: { interval: 2 days }\n    ${target}\n`],
    ['an unknown store', `keys:\n  app:\n    store: nope\n    ${target}\n`],
    ['a duplicate key', `keys:\n  a: {}\n  b: {}\n  a: {}\n`],
    ['keys 1 and "1" (distinct for the located path)', 'stores:\n  1: { type: file }\n  "1": { type: file }\n'],
    ['invalid YAML', 'keys:\n  app: [\n'],
    ['two documents', 'a: 1\n---\nb: 2\n'],
    ['a tab as indentation', 'keys:\n\tapp: {}\n'],
    ['a reserved name', 'stores:\n  __proto__: { type: file }\n'],
    ['a wrong type', 'defaults: { concurrency: "4" }\n'],
    ['a number out of range', 'defaults: { concurrency: 0x100 }\n'],
    ['a bare value', 'just text\n'],
    ['an unknown tag', 'keys: !nope {}\n'],
    ['a key named null (the located path reads it as "")', `keys:\n  null:\n    ${target}\n`],
    ['a flow mapping over two lines, under-indented', 'keys:\n  app: {target: {type: scim,\n  url: "https://app.example.com/scim/v2", applier: { type: store }}}\n'],
    ['a flow mapping over two lines, indented enough', 'keys:\n  app: {target: {type: scim,\n     url: "https://app.example.com/scim/v2", applier: { type: store }}}\n'],
    ['a plain-http target', 'keys:\n  app: { target: { type: scim, url: "http://app.example.com/scim", applier: { type: store } } }\n'],
  ];
  it.each(configs)('%s', (_name, text) => {
    expect(outcome(parseConfigText, text)).toEqual(outcome(parseLocatedConfigText, text));
  });

  it('a valid plain config is read by the fast reader, not the located path', () => {
    // Not a time: the fast reader returns data for it, so parseConfigText never builds a Document.
    const text = `keys:\n  app:\n    ${target}\n`;
    expect(readPlainYaml(text)).toMatchObject({ keys: { app: { target: { type: 'scim' } } } });
    expect(parseConfigText(text, file).keys.app?.storeName).toBe('default');
  });

  it('a 10,000-key config loads, with every key', () => {
    const lines = Array.from({ length: 10_000 }, (_, i) => `  app-${String(i).padStart(5, '0')}: {${target}}\n`);
    const config = parseConfigText(`keys:\n${lines.join('')}`, file);
    expect(Object.keys(config.keys)).toHaveLength(10_000);
    expect(config.keys['app-09999']?.config.target.type).toBe('scim');
  });
});

describe('the fast reader never reads a text otherwise than the yaml library', () => {
  // Random texts from YAML's pieces, the same every run (a fixed seed): whatever the fast reader
  // accepts, the yaml library must read as the same data, without an error or a warning.
  const pieces = ['a', 'key', ':', ': ', ' ', '  ', '\n', '\n  ', '\n    ', '- ', '[', ']', '{', '}', ', ', '"', "'", '#', ' #c', '1', '0x1', '1.5', 'true', '~', 'null', '|', '>', '? ', '\t', 'x y', '\\', '"a"', "'b'", '-', '%', '@', '`', '<<', 'é', '\r\n', '---', '...', 'k: v', 'k:\n  - 1', '\n\n'];
  let seed = 20261201;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  it.each(['', 'keys:\n  app:\n    ', 'a:\n  - ', 'a: {', 'a: "'])('after %j', (prefix) => {
    let accepted = 0;
    for (let i = 0; i < 4000; i++) {
      let text = prefix;
      for (let n = 1 + Math.floor(random() * 12); n > 0; n--) text += pieces[Math.floor(random() * pieces.length)];
      const fast = readPlainYaml(text);
      if (fast === undefined) continue;
      accepted++;
      const doc = parseDocument(text, { uniqueKeys: false, prettyErrors: false, logLevel: 'silent' });
      expect([doc.errors[0]?.code, doc.warnings[0]?.code], text).toEqual([undefined, undefined]);
      expect(fast, text).toEqual(doc.toJS({ maxAliasCount: 100 }) ?? {});
    }
    expect(accepted).toBeGreaterThan(0);
  });
});
