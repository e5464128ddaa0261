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
 * refuses unknown ones), directives (`%YAML 1.1` changes how scalars read), and what js-yaml
 * reads more leniently or otherwise: a tab in a line's indentation, text after `---` or `...`
 * on its line, explicit `?` keys (a list as a key), block scalars (`|`, `>`: their
 * indentation and chomping rules), a list entry with nothing on its line (`-` alone: the two
 * nest what follows differently). A config needs none of them. A node's
 * properties start after a space, a line start or a flow indicator; a false hit (a quoted
 * "a *b") only costs the slower path.
 */
const NEEDS_LOCATED_PATH = /(?:^|[\s[{,:])[&*!?]|^%|^ *\t|^(?:---|\.\.\.)(?!(?:[ \t]+#.*)?[ \t]*\r?$)|[|>][-+0-9]*[ \t]*(?:#.*)?\r?$|^[ \t]*(?:-[ \t]+)*-(?:[ \t]+#.*)?[ \t]*\r?$/m;

/** The config's data, or undefined when only the located path may decide (see above). */
export function readPlainYaml(text: string): unknown {
  if (NEEDS_LOCATED_PATH.test(text) || !flowsEndOnTheirLine(text)) return undefined;
  let data: unknown;
  try {
    data = jsyaml.load(text, { schema: CORE }) ?? {};
  } catch {
    return undefined; // invalid YAML, a duplicate key, more than one document: the located path says which
  }
  return keysReadAlike(data) ? data : undefined;
}

/*
 * Where js-yaml is more lenient than the `yaml` library: a quoted scalar or a flow collection
 * that goes on over the next line (the library checks the indentation of those lines), and a
 * comment glued to a closing quote or bracket (`[1]#c`; the library wants white space before
 * it); and a flow collection used as a key, which the two name differently. Such a config goes
 * to the located path. A cheap scan, line by line: a quote or bracket
 * counts only where a node starts (after indentation, `: `, `- `, `? `, `[`, `{` or `,`); a
 * false alarm (a block scalar's text, say) only costs the slower path.
 */
function flowsEndOnTheirLine(text: string): boolean {
  const space = (c: number) => c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a || Number.isNaN(c);
  let quote = 0;
  let depth = 0;
  let nodeStart = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x0a) {
      if (quote || depth > 0) return false; // goes on over the next line
      nodeStart = true;
      continue;
    }
    if (quote) {
      if (quote === 0x22 && c === 0x5c) {
        // An escape inside double quotes; an escaped line break goes on over the next line.
        if (text.charCodeAt(i + 1) === 0x0a || text.charCodeAt(i + 1) === 0x0d) return false;
        i++;
      }
      else if (c === quote && quote === 0x27 && text.charCodeAt(i + 1) === 0x27) i++; // '' inside single quotes
      else if (c === quote) {
        quote = 0;
        nodeStart = false;
        if (text.charCodeAt(i + 1) === 0x23) return false;
      }
      continue;
    }
    if (c === 0x20 || c === 0x09 || c === 0x0d) continue;
    if (c === 0x23 && (i === 0 || space(text.charCodeAt(i - 1)))) {
      // A comment: on to the end of the line.
      const end = text.indexOf('\n', i);
      i = (end < 0 ? text.length : end) - 1;
      continue;
    }
    if ((c === 0x22 || c === 0x27) && nodeStart) quote = c;
    else if ((c === 0x5b || c === 0x7b) && nodeStart) depth++;
    else if ((c === 0x5d || c === 0x7d) && depth > 0) {
      depth--;
      nodeStart = false;
      if (text.charCodeAt(i + 1) === 0x23) return false;
      // A flow collection as a key (`[a]: 1`): the libraries name it differently.
      let next = i + 1;
      while (text.charCodeAt(next) === 0x20 || text.charCodeAt(next) === 0x09) next++;
      if (text.charCodeAt(next) === 0x3a) return false;
    } else nodeStart = c === 0x2c || ((c === 0x3a || c === 0x2d || c === 0x3f) && space(text.charCodeAt(i + 1)));
  }
  return !quote && depth === 0;
}

/*
 * Keys the two libraries turn into different strings: a null key (`~:`, `null:`) is "" for
 * the `yaml` library and "null" here; a list or mapping as a key is "[ a, b ]" there and
 * "a,b" or "[object Object]" here. No provkey name has a comma, so such a config goes to the
 * located path (a key really named "null" only costs the slower path).
 */
function keysReadAlike(data: unknown): boolean {
  if (typeof data !== 'object' || data === null) return true;
  if (Array.isArray(data)) return data.every(keysReadAlike);
  for (const key in data) {
    if (key === 'null' || key.includes(',') || key.startsWith('[object ')) return false;
    if (!keysReadAlike((data as Record<string, unknown>)[key])) return false;
  }
  return true;
}
