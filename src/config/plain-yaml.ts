import jsyaml from 'js-yaml';

/*
 * The config's fast path: YAML text straight to plain data, with no syntax tree kept. The
 * `yaml` library (src/config/load.ts) builds a CST and then a located Document, 5-10 times the
 * time and about 40 times the memory (a 10,000-key config: 1.2 s and 320 MB peak RSS against
 * 0.13 s and 76 MB here). Positions only matter when something is wrong, so this path decides
 * nothing on its own: whatever it cannot read, and every config that turns out to be invalid,
 * is read again by the located path, whose verdict and message stand.
 */

// The YAML 1.2 core schema exactly as the `yaml` library resolves plain scalars
// (yaml/dist/schema/core): js-yaml's own CORE_SCHEMA reads `0b101` as a number and `-0`, `+.5e1` otherwise.
// One js-yaml type per tag (a later type of the same tag replaces an earlier one).
const plain = (name: string, forms: [RegExp, (text: string) => unknown][]) =>
  new jsyaml.Type(`tag:yaml.org,2002:${name}`, {
    kind: 'scalar',
    resolve: (text: unknown) => typeof text === 'string' && forms.some(([test]) => test.test(text)),
    construct: (text: string) => forms.find(([test]) => test.test(text))![1](text),
  });
const CORE = jsyaml.FAILSAFE_SCHEMA.extend({
  implicit: [
    plain('null', [[/^(?:~|[Nn]ull|NULL)?$/, () => null]]),
    plain('bool', [[/^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/, (text) => text[0] === 't' || text[0] === 'T']]),
    plain('int', [
      [/^0o[0-7]+$/, (text) => parseInt(text.slice(2), 8)],
      [/^[-+]?[0-9]+$/, (text) => parseInt(text, 10)],
      [/^0x[0-9a-fA-F]+$/, (text) => parseInt(text.slice(2), 16)],
    ]),
    plain('float', [
      [/^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/, (text) => (text.slice(-3).toLowerCase() === 'nan' ? NaN : text[0] === '-' ? -Infinity : Infinity)],
      [/^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/, (text) => parseFloat(text)],
      [/^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/, (text) => parseFloat(text)],
    ]),
  ],
});

/*
 * What is left to the located path, by a look at the text: anchors and aliases (the located
 * path bounds their expansion; here they would be shared objects), tags (the `yaml` library
 * refuses unknown ones) and directives (`%YAML 1.1` changes how scalars read). A node's
 * properties start after a space, a line start or a flow indicator; a false hit (a quoted
 * "a *b") only costs the slower path.
 */
const NEEDS_LOCATED_PATH = /(?:^|[\s[{,:])[&*!]|^%/m;

/** The config's data, or undefined when only the located path may decide (see above). */
export function readPlainYaml(text: string): unknown {
  if (NEEDS_LOCATED_PATH.test(text)) return undefined;
  try {
    return jsyaml.load(text, { schema: CORE }) ?? {};
  } catch {
    return undefined; // invalid YAML, a duplicate key, more than one document: the located path says which
  }
}
