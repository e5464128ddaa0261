import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as v from 'valibot';
import { ConfigError } from '../core/errors.js';
import { assertNotWritableByOthers } from '../io/safe-file.js';
import { parseDuration } from '../core/duration.js';
import type { GenerationPolicy } from '../core/keygen.js';
import type { RotationPolicy } from '../core/schedule.js';
import { readPlainYaml } from './plain-yaml.js';
import { checkConfigData, checkKeyConfig } from './validate.js';
import { configSchema, type FileStoreConfig, type KeyConfig, type RawConfig, type RawFileStoreConfig, type StoreConfig } from './schema.js';

export interface Config {
  /** Absolute path of the config file, or undefined when running on built-in defaults. */
  file: string | undefined;
  dir: string;
  /** Where written state lives by default: the store, its key, the audit log (and their locks). */
  stateDir: string;
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

/**
 * Where written state goes: --state-dir, else PROVKEY_STATE_DIR, else `.provkey/` beside the
 * config file (so a config directory that is writable keeps today's layout). Undefined here
 * means that default; config/load.ts resolves it against the config's directory.
 */
export function stateDirOption(flag: string | undefined, env: NodeJS.ProcessEnv, cwd: string): string | undefined {
  const chosen = flag ?? (env.PROVKEY_STATE_DIR || undefined);
  if (chosen === undefined) return undefined;
  if (chosen.trim() === '') throw new ConfigError('--state-dir: must not be empty', 'usage.state_dir');
  return path.resolve(cwd, chosen);
}

export interface LoadOptions {
  mustExist: boolean;
  /** Absolute state directory; default `.provkey/` in the config's directory. */
  stateDir?: string | undefined;
}

export async function loadConfig(file: string, options: LoadOptions): Promise<Config> {
  let text: string;
  try {
    // A config others can edit can point keys anywhere and name any hook (refused like ssh does).
    await assertNotWritableByOthers(file, 'config file');
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !options.mustExist) {
      return resolveConfig(v.parse(configSchema, {}), undefined, path.dirname(file), options.stateDir);
    }
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ConfigError(`config: ${file} does not exist (run "provkey init" or pass --config)`, 'config.missing');
    }
    throw new ConfigError(`config: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, 'config.unreadable');
  }
  // The yaml library (positions for messages) is loaded only for a config the fast path does not accept.
  return parseConfigFast(text, file, options.stateDir) ?? (await import('./located.js')).parseLocatedConfigText(text, file, options.stateDir);
}

/** A fleet's provkey.yaml with tens of thousands of keys fits; a bigger file is not a config (and is not parsed). */
const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

/**
 * The fast path (plain data, no syntax tree) decides only a valid config: undefined for anything
 * it cannot read and anything invalid, which the located path (located.ts) reads again with
 * positions, and whose verdict stands.
 */
export function parseConfigFast(text: string, file: string, stateDir?: string): Config | undefined {
  if (text.length > MAX_CONFIG_BYTES) throw new ConfigError(`config: ${file} is larger than ${MAX_CONFIG_BYTES} bytes; is it a provkey config?`, 'config.invalid');
  const data = readPlainYaml(text);
  if (data === undefined) return undefined;
  try {
    return configFromData(data, file, stateDir, () => '');
  } catch {
    return undefined; // reported by the located path, with the line and column of the offending field
  }
}


/** The checks after YAML, the same on both paths: bounds, schema, then the resolved config; `at` places a field in the file. */
export function configFromData(data: unknown, file: string, stateDir: string | undefined, at: (keys: string[], field?: string) => string): Config {
  checkConfigData(data);
  const parsed = v.safeParse(configSchema, data, { abortEarly: true });
  if (!parsed.success) {
    const issue = parsed.issues[0];
    const keys = (issue.path ?? []).map((item) => String(item.key));
    const unknown = issue.kind === 'schema' && issue.expected === 'never' && keys.length > 0;
    const hint = unknown ? didYouMean(keys.at(-1)!, knownFields(configSchema as unknown as AnySchema, data, keys.slice(0, -1))) : '';
    throw new ConfigError(`${describeIssue(issue)}${hint}${unknown ? at(keys.slice(0, -1), keys.at(-1)) : at(keys)}`, 'config.invalid');
  }
  try {
    return resolveConfig(parsed.output, file, path.dirname(file), stateDir);
  } catch (error) {
    // Checks after the schema (durations, store names) name a field path: point at it too.
    const field = error instanceof ConfigError || error instanceof Error ? /^([\w.-]+): /.exec(error.message)?.[1] : undefined;
    if (!field || !(error instanceof Error) || !('exitCode' in error)) throw error;
    const suffix = at(field.split('.'));
    if (suffix) error.message = `${error.message}${suffix}`;
    throw error;
  }
}



type AnySchema = { type: string; entries?: Record<string, AnySchema>; wrapped?: AnySchema; value?: AnySchema; options?: AnySchema[]; key?: string; literal?: unknown };

/** The fields a strict object at `keys` allows, walking the schema along the data (variants pick their option by the data's tag). */
function knownFields(schema: AnySchema, data: unknown, keys: string[]): string[] {
  let node: AnySchema | undefined = schema;
  let value: unknown = data;
  const settle = (s: AnySchema | undefined, d: unknown): AnySchema | undefined => {
    while (s?.wrapped) s = s.wrapped;
    if (s?.type === 'variant' && s.key && s.options) {
      const tag = (d as Record<string, unknown> | undefined)?.[s.key];
      return settle(s.options.find((o) => settle(o, d)?.entries?.[s!.key!]?.literal === tag) ?? s.options[0], d);
    }
    return s;
  };
  for (const key of keys) {
    node = settle(node, value);
    node = node?.type === 'record' ? node.value : node?.entries?.[key];
    value = (value as Record<string, unknown> | undefined)?.[key];
  }
  return Object.keys(settle(node, value)?.entries ?? {});
}

/** ' (did you mean "grace"?)' when a known field is a small typo away (Damerau-free Levenshtein, distance <= 2). */
function didYouMean(field: string, known: string[]): string {
  const distance = (a: string, b: string): number => {
    const row = Array.from({ length: b.length + 1 }, (_, i) => i);
    for (let i = 1; i <= a.length; i++) {
      let previous = row[0]!;
      row[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const kept = row[j]!;
        row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
        previous = kept;
      }
    }
    return row[b.length]!;
  };
  const best = known.map((name) => ({ name, d: distance(field, name) })).sort((x, y) => x.d - y.d)[0];
  return best && best.d <= Math.max(1, Math.min(2, Math.floor(field.length / 3))) ? ` (did you mean "${best.name}"?)` : '';
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

function resolveConfig(raw: RawConfig, file: string | undefined, dir: string, stateDirFlag: string | undefined): Config {
  const stateDir = stateDirFlag ?? path.join(dir, '.provkey');
  // Paths the config names stay relative to the config; those it leaves out go to the state dir.
  const fileStore = (store: RawFileStoreConfig): FileStoreConfig => ({ ...store, path: store.path ?? path.join(stateDir, 'store.enc'), keyFile: store.keyFile ?? path.join(stateDir, 'store.key') });
  const stores: Record<string, StoreConfig> = Object.fromEntries(Object.entries(raw.stores).map(([name, store]) => [name, store.type === 'file' ? fileStore(store) : store]));
  // The embedded encrypted file store is there even when the config names no store.
  stores[DEFAULT_STORE_NAME] ??= fileStore({ type: 'file' });
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
    stateDir,
    raw,
    stores,
    keys,
    auditPath: raw.audit.path ? path.resolve(dir, raw.audit.path) : path.join(stateDir, 'audit.jsonl'),
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
