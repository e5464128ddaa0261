import path from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type YAMLError } from 'yaml';
import { ConfigError } from '../core/errors.js';
import { configFromData, parseConfigFast, type Config } from './load.js';

/**
 * Reading a config with positions: the `yaml` library's located Document, for the configs the
 * fast path of load.ts does not accept (and for callers that parse a text they just wrote).
 * Kept apart so that a command reading a valid config never loads the yaml library.
 */

/** A config text read as load.ts reads a file: the fast path, else the located path, whose verdict stands. */
export function parseConfigText(text: string, file: string, stateDir?: string): Config {
  return parseConfigFast(text, file, stateDir) ?? parseLocatedConfigText(text, file, stateDir);
}

/**
 * The located path: the `yaml` library's Document, whose nodes know where they start, so every
 * message can name a line and column. Used for every config the fast path does not accept
 * (exported for the test that compares both paths); the Document is dropped when it returns.
 */
export function parseLocatedConfigText(text: string, file: string, stateDir?: string): Config {
  // Never the source text in a message: --config pointed at a key file would print the key.
  // Warnings (e.g. an unknown tag) are errors too: the yaml library would print them itself.
  const lines = new LineCounter();
  // uniqueKeys off: the library compares every key with every other (quadratic in a 10,000-key
  // config); duplicateKeyAt does the same check with one set per mapping.
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: false, logLevel: 'silent', lineCounter: lines });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) {
    const { line, col } = lines.linePos(problem.pos[0]);
    throw new ConfigError(`config line ${line}, column ${col}: invalid YAML: ${yamlProblem(problem.code)}`, 'config.yaml');
  }
  const duplicate = duplicateKeyAt(doc);
  if (duplicate !== undefined) {
    const { line, col } = lines.linePos(duplicate);
    throw new ConfigError(`config line ${line}, column ${col}: invalid YAML: ${yamlProblem('DUPLICATE_KEY')}`, 'config.yaml');
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch {
    throw new ConfigError('config: invalid YAML: too many aliases (or an alias to nothing)', 'config.yaml');
  }
  return configFromData(data, file, stateDir, (keys, field) => positionSuffix(doc, lines, path.basename(file), keys, field));
}

/** Where the first key that repeats one earlier in the same mapping starts, if any. */
function duplicateKeyAt(doc: Document): number | undefined {
  let at: number | undefined;
  visit(doc, {
    Map(_, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        // Scalar keys by value (as the library's own check: 1 and "1" differ); other keys by node.
        const id = isScalar(pair.key) ? `${typeof pair.key.value}:${String(pair.key.value)}` : pair.key;
        if (seen.has(id)) {
          at = (isScalar(pair.key) ? pair.key.range?.[0] : undefined) ?? map.range?.[0] ?? 0;
          return visit.BREAK;
        }
        seen.add(id);
      }
      return undefined;
    },
  });
  return at;
}

/** " (provkey.yaml line 4, column 5)" for the node at `keys` (or that map's key `field`), or the nearest parent that exists. */
function positionSuffix(doc: Document, lines: LineCounter, fileName: string, keys: string[], field?: string): string {
  let node: unknown = doc.contents;
  let found: unknown = node;
  for (const key of keys) {
    if (isMap(node)) node = node.get(key, true);
    else if (isSeq(node)) node = node.get(Number(key), true);
    else break;
    if (!node) break;
    found = node;
  }
  if (field !== undefined && isMap(found)) {
    const pair = found.items.find((item) => isScalar(item.key) && String(item.key.value) === field);
    if (pair) found = pair.key;
  }
  const range = (found as { range?: [number, number, number] } | undefined)?.range;
  if (!range) return '';
  const { line, col } = lines.linePos(range[0]);
  return ` (${fileName} line ${line}, column ${col})`;
}

const YAML_PROBLEMS: Partial<Record<YAMLError['code'], string>> = {
  BAD_INDENT: 'bad indentation',
  TAB_AS_INDENT: 'a tab used as indentation',
  DUPLICATE_KEY: 'a key appears twice in one mapping',
  MISSING_CHAR: 'a closing quote or bracket is missing',
  BLOCK_AS_IMPLICIT_KEY: 'a nested mapping where a single-line key was expected',
  BAD_SCALAR_START: 'a plain value starts with a reserved character (quote it)',
  MULTIPLE_DOCS: 'more than one YAML document',
  TAG_RESOLVE_FAILED: 'an unknown tag (provkey.yaml uses no tags)',
  UNEXPECTED_TOKEN: 'unexpected text',
  MULTILINE_IMPLICIT_KEY: 'a key spans more than one line',
};

/** The kind of problem in words, from the library's error code (its messages can quote the source). */
function yamlProblem(code: YAMLError['code']): string {
  return YAML_PROBLEMS[code] ?? code.toLowerCase().replaceAll('_', ' ');
}
