import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseDocument, type YAMLError } from 'yaml';
import * as v from 'valibot';
import { ConfigError } from '../core/errors.js';
import { assertNotWritableByOthers } from '../io/safe-file.js';
import { parseDuration } from '../core/duration.js';
import type { GenerationPolicy } from '../core/keygen.js';
import type { RotationPolicy } from '../core/schedule.js';
import { checkConfigData, checkKeyConfig } from './validate.js';
import { configSchema, type KeyConfig, type RawConfig, type StoreConfig } from './schema.js';

export interface Config {
  /** Absolute path of the config file, or undefined when running on built-in defaults. */
  file: string | undefined;
  dir: string;
  raw: RawConfig;
  stores: Record<string, StoreConfig>;
  keys: Record<string, ResolvedKey>;
  auditPath: string;
  /** audit.anchor resolved, when configured. */
  auditAnchor?: string;
  concurrency: number;
}

export interface ResolvedKey {
  name: string;
  storeName: string;
  config: KeyConfig;
  policy: GenerationPolicy;
  rotation: RotationPolicy;
}

export const DEFAULT_STORE_NAME = 'default';

/** Which config file a run uses: --config, else PROVKEY_CONFIG, else ./provkey.yaml. */
export function configPath(flag: string | undefined, env: NodeJS.ProcessEnv, cwd: string): string {
  // An empty name would resolve to the working directory itself.
  if (flag === '') throw new ConfigError('--config: must not be empty', 'config.missing');
  if (flag === undefined && env.PROVKEY_CONFIG === '') throw new ConfigError('PROVKEY_CONFIG: is set but empty (unset it, or name a file)', 'config.missing');
  return path.resolve(cwd, flag ?? env.PROVKEY_CONFIG ?? 'provkey.yaml');
}

export async function loadConfig(file: string, options: { mustExist: boolean }): Promise<Config> {
  let text: string;
  try {
    // A config others can edit can point keys anywhere and name any hook (refused like ssh does).
    await assertNotWritableByOthers(file, 'config file');
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !options.mustExist) {
      return resolveConfig(v.parse(configSchema, {}), undefined, path.dirname(file));
    }
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ConfigError(`config: ${file} does not exist (run "provkey init" or pass --config)`, 'config.missing');
    }
    throw new ConfigError(`config: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, 'config.unreadable');
  }
  return parseConfigText(text, file);
}

/** A provkey.yaml is a few kilobytes; a bigger file is not one (and is not parsed). */
const MAX_CONFIG_BYTES = 1024 * 1024;

export function parseConfigText(text: string, file: string): Config {
  if (text.length > MAX_CONFIG_BYTES) throw new ConfigError(`config: ${file} is larger than ${MAX_CONFIG_BYTES} bytes; is it a provkey config?`, 'config.invalid');
  // Never the source text in a message: --config pointed at a key file would print the key.
  // Warnings (e.g. an unknown tag) are errors too: the yaml library would print them itself.
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, logLevel: 'silent' });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) {
    throw new ConfigError(`config ${where(text, problem.pos[0])}: invalid YAML: ${yamlProblem(problem.code)}`, 'config.yaml');
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch {
    throw new ConfigError('config: invalid YAML: too many aliases (or an alias to nothing)', 'config.yaml');
  }
  checkConfigData(data);
  const parsed = v.safeParse(configSchema, data, { abortEarly: true });
  if (!parsed.success) throw new ConfigError(describeIssue(parsed.issues[0]), 'config.invalid');
  return resolveConfig(parsed.output, file, path.dirname(file));
}

/** "line 3, column 7" of a character offset (1-based, as editors count). */
function where(text: string, offset: number): string {
  const before = text.slice(0, Math.max(0, offset));
  const line = before.split('\n').length;
  const column = offset - (before.lastIndexOf('\n') + 1) + 1;
  return `line ${line}, column ${column}`;
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

/**
 * A path segment or field name from the file, shown only when it is short printable text like
 * a field or key name; anything longer (a pasted secret used as a key) is not echoed.
 */
function shown(segment: string): string {
  return /^[\x21-\x7e][\x20-\x7e]{0,31}$/.test(segment) && !/["':]/.test(segment) ? segment : '[…]';
}

/** What a value is, never what it says. */
function kindOf(input: unknown): string {
  if (input === null || input === undefined) return 'nothing';
  if (Array.isArray(input)) return 'a list';
  if (typeof input === 'object') return 'a mapping';
  return `a ${typeof input}`;
}

/**
 * One line naming the field: "keys.app.rotation.grace: must be a duration …". Built from the
 * schema's expectation and the kind of the value, never from valibot's message, which quotes
 * the value it received.
 */
function describeIssue(issue: v.BaseIssue<unknown>): string {
  const keys = (issue.path ?? []).map((item) => shown(String(item.key)));
  // A strict object reports an unknown field as an issue at that field's own path.
  if (issue.kind === 'schema' && issue.expected === 'never' && keys.length > 0) {
    const field = keys.pop()!;
    return `${keys.length ? keys.join('.') : 'config'}: unknown field ${field === '[…]' ? '(its name is not shown: it does not look like a field name)' : `"${field}"`}`;
  }
  const at = keys.length ? keys.join('.') : 'config';
  if (issue.type === 'variant' && issue.expected) return `${at}: must be one of ${issue.expected.replaceAll('"', '')}`;
  if (issue.kind === 'schema') {
    if (issue.input === undefined && keys.length > 0) return `${at}: required`;
    return `${at}: expected ${issue.expected ?? 'another type'}, got ${kindOf(issue.input)}`;
  }
  // Our own messages (regex, custom checks) never contain the value; valibot's defaults start with "Invalid".
  if (!issue.message.startsWith('Invalid ')) return `${at}: ${issue.message}`;
  return `${at}: ${issue.type.replaceAll('_', ' ')} must be ${issue.expected ?? 'valid'}`;
}

function resolveConfig(raw: RawConfig, file: string | undefined, dir: string): Config {
  const stores: Record<string, StoreConfig> = { ...raw.stores };
  // The embedded encrypted file store is there even when the config names no store.
  stores[DEFAULT_STORE_NAME] ??= { type: 'file', path: '.provkey/store.enc', keyFile: '.provkey/store.key' };
  if (!stores[raw.defaults.store]) {
    throw new ConfigError(`defaults.store: no store named "${raw.defaults.store}" under stores`, 'config.invalid');
  }
  const keys: Record<string, ResolvedKey> = {};
  for (const [name, key] of Object.entries(raw.keys)) {
    const storeName = key.store ?? raw.defaults.store;
    if (!stores[storeName]) throw new ConfigError(`keys.${name}.store: no store named "${storeName}" under stores`, 'config.invalid');
    const field = `keys.${name}.rotation`;
    const rotation = {
      intervalMs: parseDuration(key.rotation.interval, `${field}.interval`),
      graceMs: parseDuration(key.rotation.grace, `${field}.grace`),
    };
    if (rotation.intervalMs <= 0) throw new ConfigError(`${field}.interval: must be longer than 0`, 'config.invalid');
    checkKeyConfig(name, key);
    keys[name] = { name, storeName, config: key, policy: key.format as GenerationPolicy, rotation };
  }
  return {
    file,
    dir,
    raw,
    stores,
    keys,
    auditPath: path.resolve(dir, raw.audit.path),
    ...(raw.audit.anchor ? { auditAnchor: path.resolve(dir, raw.audit.anchor) } : {}),
    concurrency: raw.defaults.concurrency,
  };
}

export function keyOrThrow(config: Config, name: string): ResolvedKey {
  // Only a name that could be one is quoted back (argv may hold anything, even a pasted secret).
  if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(name)) throw new ConfigError('key: not a key name (1-63 chars of a-z, 0-9, ".", "_", "-")', 'config.unknown_key');
  const key = Object.hasOwn(config.keys, name) ? config.keys[name] : undefined;
  if (!key) {
    const known = Object.keys(config.keys);
    const hint = known.length ? ` (known: ${known.join(', ')})` : ' (the config defines no keys)';
    throw new ConfigError(`key "${name}" is not in ${config.file ?? 'the config'}${hint}`, 'config.unknown_key');
  }
  return key;
}
