import { redact } from '../core/redact.js';

/** Server text in a one-line detail: registered secrets cut out, control characters flattened, bounded. */
export function serverText(text: string, max = 200): string {
  const flat = redact(text).replace(/[\u0000-\u001f\u007f]+/g, ' ').replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
