import type { Colors } from '../io.js';
import { formatDuration } from '../../core/duration.js';

export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const ms = now - Date.parse(iso);
  return ms >= 0 ? `${formatDuration(ms)} ago` : `in ${formatDuration(-ms)}`;
}

export function outcomeColor(color: Colors, ok: boolean, text: string): string {
  return ok ? color.green(text) : color.red(text);
}

/** Every JSON document provkey prints carries this; bumped only when a field changes meaning or goes away. */
export const JSON_SCHEMA_VERSION = 1;

export function withSchemaVersion<T extends object>(data: T): { schemaVersion: number } & T {
  return { schemaVersion: JSON_SCHEMA_VERSION, ...data };
}

/**
 * One JSON document: pretty on a terminal, one line otherwise (JSON Lines: a cron log or a
 * pipe gets one parseable line per run).
 */
export function printJson(out: (text: string) => void, data: object, pretty = Boolean(process.stdout.isTTY)): void {
  out(pretty ? JSON.stringify(withSchemaVersion(data), null, 2) : JSON.stringify(withSchemaVersion(data)));
}
