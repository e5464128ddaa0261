import type { ChalkInstance } from 'chalk';
import { formatDuration } from '../../core/duration.js';

export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const ms = now - Date.parse(iso);
  return ms >= 0 ? `${formatDuration(ms)} ago` : `in ${formatDuration(-ms)}`;
}

export function outcomeColor(color: ChalkInstance, ok: boolean, text: string): string {
  return ok ? color.green(text) : color.red(text);
}

export function printJson(out: (text: string) => void, data: unknown): void {
  out(JSON.stringify(data, null, 2));
}
