import { access, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseDocument, stringify } from 'yaml';
import { configPath, DEFAULT_STORE_NAME, loadConfig, stateDirOption } from '../../config/load.js';
import { parseConfigText } from '../../config/located.js';
import { UsageError } from '../../core/errors.js';
import type { GlobalOptions } from '../globals.js';
import type { Io } from '../io.js';
import { printJson } from '../render/format.js';
import { answerChecks, KEY_NAME } from './init-answers.js';

export interface InitOptions {
  key?: string;
  target?: string;
  url?: string;
  applier?: string;
  applierUrl?: string;
  applierAuthRef?: string;
  execCommand?: string;
  format?: string;
  interval?: string;
  grace?: string;
  passphraseEnv?: string;
  force: boolean;
}

/**
 * `init`: writes provkey.yaml and creates the embedded store's key file. Interactive on a
 * TTY when no key is named; every answer can also come from a flag, for scripts.
 */
export async function initCommand(options: InitOptions, globals: GlobalOptions, io: Io): Promise<number> {
  const file = configPath(globals.config, process.env, process.cwd());
  const exists = await access(file).then(() => true, () => false);
  if (exists && !options.force) throw new UsageError(`init: ${file} already exists (pass --force to overwrite)`, 'usage.init');
  if (exists) await refuseToDropKeys(file);
  const answers = options.key || !io.interactive ? options : await askInteractively(options);

  const doc: Record<string, unknown> = { version: 1 };
  // No paths: the store, its key and the audit log go to the state dir (.provkey/ beside the
  // config, or --state-dir / PROVKEY_STATE_DIR), so a read-only config can be mounted as is.
  doc.stores = { default: { type: 'file', ...(answers.passphraseEnv ? { passphraseEnv: answers.passphraseEnv } : {}) } };
  if (answers.key) {
    if ((answers.target ?? 'scim') !== 'scim') throw new UsageError('--target: init writes SCIM keys; add LDAP keys by editing provkey.yaml (see docs/ldap.md)', 'usage.init');
    if (!answers.url) throw new UsageError('--url: the SCIM base URL is required with --key', 'usage.init');
    const applierType = answers.applier ?? 'store';
    const applier =
      applierType === 'http'
        ? { type: 'http', url: required(answers.applierUrl, '--applier-url'), authRef: required(answers.applierAuthRef, '--applier-auth-ref') }
        : applierType === 'exec'
          ? { type: 'exec', command: required(answers.execCommand, '--exec-command').split(/\s+/).filter(Boolean) }
          : { type: 'store' };
    doc.keys = {
      [answers.key]: {
        format: { type: answers.format ?? 'token' },
        rotation: { interval: answers.interval ?? '30d', grace: answers.grace ?? '24h' },
        target: { type: 'scim', url: answers.url, applier },
      },
    };
  } else doc.keys = {};
  const text = `# provkey configuration: see docs/config.md\n# State (store, store key, audit log): .provkey/ beside this file, or --state-dir / PROVKEY_STATE_DIR.\n${stringify(doc)}`;
  const stateDir = stateDirOption(globals.stateDir, process.env, process.cwd());
  const parsed = parseConfigText(text, file, stateDir); // the file we write must load: validate before touching disk
  if (globals.dryRun) {
    io.out(text);
    return 0;
  }
  // The store first, the config last: a failure leaves no config that points at nothing.
  await mkdir(path.dirname(file), { recursive: true });
  const { initFileStore } = await import('../../stores/file.js');
  const storeConfig = parsed.stores[DEFAULT_STORE_NAME] as Parameters<typeof initFileStore>[0];
  const passphrase = answers.passphraseEnv ? await newPassphrase(io, answers.passphraseEnv) : undefined;
  const store = await initFileStore(
    storeConfig,
    { configDir: path.dirname(file), env: process.env, resolveSecret: async () => '', debug: io.debug },
    passphrase === undefined ? {} : { passphrase },
  );
  await writeFile(file, text, { mode: 0o644 });
  if (io.json) printJson(io.out, { config: file, store: store });
  else {
    io.out(`${io.color.green('✔')} wrote ${file}`);
    if (store.keyFile && store.created) io.out(`${io.color.green('✔')} created the store key ${store.keyFile} (mode 0600): back it up; without it the store cannot be read`);
    else if (store.keyFile) io.out(`${io.color.green('✔')} kept the existing store and its key ${store.keyFile} (nothing in it was changed)`);
    else if (!store.created) io.out(`${io.color.green('✔')} kept the existing store (nothing in it was changed)`);
    io.out(answers.key ? `next: provkey add ${answers.key}` : 'next: add a key to provkey.yaml, then provkey add KEY');
  }
  return 0;
}

/**
 * --force rewrites the config, but never silently forgets keys: their versions stay in the
 * store, and a config without them would leave those secrets unmanaged (and unrevocable).
 */
async function refuseToDropKeys(file: string): Promise<void> {
  let keys: string[];
  try {
    keys = Object.keys((await loadConfig(file, { mustExist: true })).keys);
  } catch {
    // An invalid config is what --force is for, unless it still names keys (read just those),
    // or is not a config at all (--config pointed at the store key must never overwrite it).
    const { readFile } = await import('node:fs/promises');
    const data = await readFile(file, 'utf8').then((text) => parseDocument(text, { logLevel: 'silent' }).toJS() as unknown, () => undefined);
    if (!data || typeof data !== 'object' || Array.isArray(data)) {
      throw new UsageError(`init --force: ${file} is not a YAML mapping, so not a provkey config; it is not overwritten`, 'usage.init');
    }
    const named = (data as { keys?: unknown }).keys;
    keys = named && typeof named === 'object' && !Array.isArray(named) ? Object.keys(named) : [];
  }
  if (keys.length > 0) {
    // Names from a file that did not load are shown only when they are key names.
    const shown = keys.filter((k) => KEY_NAME.test(k)).slice(0, 5);
    throw new UsageError(`init --force: ${file} defines ${keys.length} key(s)${shown.length ? ` (${shown.join(', ')}${keys.length > shown.length ? ', …' : ''})` : ''} that a new config would drop while their versions stay in the store; edit provkey.yaml instead, or move it away first`, 'usage.init');
  }
}

/** The store's passphrase: from its environment variable, or typed twice at a terminal. */
async function newPassphrase(io: Io, envName: string): Promise<string | undefined> {
  if (process.env[envName]) return undefined; // the store reads it from the environment itself
  if (!io.interactive) throw new UsageError(`--passphrase-env: ${envName} is not set (export it, or run init at a terminal to type it)`, 'usage.init');
  const { promptHidden } = await import('../globals.js');
  const first = await promptHidden(`New store passphrase (later runs read it from ${envName}, or ask)`);
  if (first.length < 12) throw new UsageError('passphrase: use at least 12 characters', 'usage.init');
  if ((await promptHidden('Type it again')) !== first) throw new UsageError('passphrase: the two entries differ; nothing was written', 'usage.init');
  return first;
}

function required(value: string | undefined, flag: string): string {
  if (!value) throw new UsageError(`${flag}: required for this applier`, 'usage.init');
  return value;
}

async function askInteractively(options: InitOptions): Promise<InitOptions> {
  const { input, select } = await import('@inquirer/prompts');
  const out = { output: process.stderr };
  const key = (await input({ message: 'Name of the first key (e.g. entra-scim-prod):', validate: answerChecks.key }, out)).trim();
  const url = (await input({ message: 'SCIM base URL of the app (https://…/scim/v2):', validate: answerChecks.url }, out)).trim();
  const applier = await select({
    message: 'How does the app learn a new token?',
    choices: [
      { name: 'It reads the store itself', value: 'store' },
      { name: 'provkey calls a token endpoint (HTTP)', value: 'http' },
      { name: 'provkey runs a command (token on stdin)', value: 'exec' },
    ],
  }, out);
  const extra: Partial<InitOptions> = {};
  if (applier === 'http') {
    extra.applierUrl = (await input({ message: 'Token endpoint URL:', validate: answerChecks.applierUrl }, out)).trim();
    extra.applierAuthRef = (await input({ message: 'Where provkey finds the endpoint\'s admin token (env:NAME or file:/path):', default: 'env:PROVKEY_APPLIER_TOKEN', validate: answerChecks.authRef }, out)).trim();
  } else if (applier === 'exec') {
    extra.execCommand = (await input({ message: 'Command to run (receives the token on stdin):', validate: answerChecks.command }, out)).trim();
  }
  const interval = (await input({ message: 'Rotate every:', default: '30d', validate: answerChecks.interval }, out)).trim();
  const grace = (await input({ message: 'Keep the previous token working for:', default: '24h', validate: answerChecks.grace }, out)).trim();
  return { ...options, key, url, applier, interval, grace, ...extra };
}
