import type { Config } from '../config/load.js';
import { isProvkeyError, type ExitCode } from '../core/errors.js';
import type { VersionLabel } from '../core/model.js';
import type { Session } from '../engine/session.js';

/** What a found token is, by its fingerprint: a version of a configured key, or unknown. */
export type Identity =
  | { key: string; inConfig: boolean; store: string; versionId: string; label: VersionLabel; live: boolean }
  | { key: null; label: 'unknown'; live: false };

/** Labels whose value a target may still accept: a leak of one of these needs containing now. */
const LIVE_LABELS: ReadonlySet<VersionLabel> = new Set(['current', 'pending', 'previous']);

export interface StoreProblem {
  key: string;
  store: string;
  message: string;
  exitCode: ExitCode;
}

export interface FingerprintIndex {
  identify(fingerprint: string): Identity;
  /** Keys whose store could not be read: a token of theirs would wrongly look unknown. */
  problems: StoreProblem[];
}

const UNKNOWN: Identity = { key: null, label: 'unknown', live: false };

/** For a scan that found nothing: no store is opened. */
export const EMPTY_INDEX: FingerprintIndex = { identify: () => UNKNOWN, problems: [] };

/**
 * Reads the version metadata (fingerprints and labels, never values) of every key in every
 * store a configured key uses, including keys the config no longer names (a leaked version of
 * a forgotten key is still a leak), and indexes it by fingerprint.
 */
export async function indexFingerprints(session: Session, config: Config): Promise<FingerprintIndex> {
  const byFingerprint = new Map<string, Identity>();
  const problems: StoreProblem[] = [];
  const configured = Object.values(config.keys);
  const storeNames = [...new Set(configured.map((key) => key.storeName))].sort();
  const problem = (key: string, store: string, error: unknown) => {
    if (!isProvkeyError(error)) throw error;
    problems.push({ key, store, message: error.message, exitCode: error.exitCode });
  };
  await Promise.all(
    storeNames.map(async (storeName) => {
      const inConfig = new Set(configured.filter((key) => key.storeName === storeName).map((key) => key.name));
      let store;
      try {
        store = await session.storeNamed(storeName);
      } catch (error) {
        for (const key of inConfig) problem(key, storeName, error);
        return;
      }
      // Listing may be refused where reading is not: the configured keys are still read.
      const names = new Set(inConfig);
      try {
        for (const name of await store.listKeys()) names.add(name);
      } catch (error) {
        problem('(keys not in the config)', storeName, error);
      }
      await Promise.all(
        [...names].map(async (name) => {
          try {
            const record = await store.read(name);
            for (const version of record?.versions ?? []) {
              byFingerprint.set(version.fingerprint, { key: name, inConfig: inConfig.has(name), store: storeName, versionId: version.id, label: version.label, live: LIVE_LABELS.has(version.label) });
            }
          } catch (error) {
            problem(name, storeName, error);
          }
        }),
      );
    }),
  );
  return {
    identify: (fingerprint) => byFingerprint.get(fingerprint) ?? UNKNOWN,
    problems,
  };
}

/** The prefixes to look for: every token-format key's, plus any asked for, else provkey's default. */
export function prefixesOf(config: Config, extra: readonly string[]): string[] {
  const prefixes = new Set(extra);
  for (const key of Object.values(config.keys)) if (key.policy.type === 'token') prefixes.add(key.policy.prefix);
  if (prefixes.size === 0) prefixes.add('pk');
  return [...prefixes];
}
