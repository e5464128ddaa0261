import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import * as v from 'valibot';
import { ConfigError } from '../core/errors.js';
import { assertNotWritableByOthers } from '../io/safe-file.js';
import { parseDuration } from '../core/duration.js';
import type { GenerationPolicy } from '../core/keygen.js';
import type { RotationPolicy } from '../core/schedule.js';
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
    throw new ConfigError(`config: cannot read ${file}: ${(error as Error).message}`, 'config.unreadable');
  }
  return parseConfigText(text, file);
}

export function parseConfigText(text: string, file: string): Config {
  let data: unknown;
  try {
    data = parseYaml(text, { prettyErrors: false, uniqueKeys: true }) ?? {};
  } catch (error) {
    const where = error instanceof YAMLParseError && error.linePos ? ` line ${error.linePos[0].line}` : '';
    throw new ConfigError(`config${where}: invalid YAML: ${(error as Error).message.split('\n')[0]}`, 'config.yaml');
  }
  const parsed = v.safeParse(configSchema, data, { abortEarly: true });
  if (!parsed.success) throw new ConfigError(describeIssue(parsed.issues[0]), 'config.invalid');
  return resolveConfig(parsed.output, file, path.dirname(file));
}

/** One line naming the field: "keys.app.rotation.grace: must be a duration …". */
function describeIssue(issue: v.BaseIssue<unknown>): string {
  const keys = (issue.path ?? []).map((item) => String(item.key));
  // A strict object reports an unknown field as an issue at that field's own path.
  if (issue.kind === 'schema' && issue.expected === 'never' && keys.length > 0) {
    const field = keys.pop()!;
    return `${keys.length ? keys.join('.') : 'config'}: unknown field "${field}"`;
  }
  const where = keys.length ? keys.join('.') : 'config';
  if (issue.type === 'variant' && issue.expected) return `${where}: must be one of ${issue.expected.replaceAll('"', '')}`;
  const message =
    issue.received === 'undefined' && issue.message.startsWith('Invalid key')
      ? 'required'
      : issue.message.startsWith('Invalid type')
        ? `expected ${issue.expected}, got ${issue.received}`
        : issue.message.startsWith('Invalid value')
          ? `must be ${issue.expected} (got ${issue.received})`
          : issue.message;
  return `${where}: ${message}`;
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
    for (const durationField of ['propagationTimeout', 'requestTimeout', 'timeout'] as const) {
      const value = (key.target as Record<string, unknown>)[durationField];
      if (typeof value === 'string') parseDuration(value, `keys.${name}.target.${durationField}`);
    }
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
  const key = config.keys[name];
  if (!key) {
    const known = Object.keys(config.keys);
    const hint = known.length ? ` (known: ${known.join(', ')})` : ' (the config defines no keys)';
    throw new ConfigError(`key "${name}" is not in ${config.file ?? 'the config'}${hint}`, 'config.unknown_key');
  }
  return key;
}
