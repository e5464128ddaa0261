import type { SecretInUse } from '../target.js';

const MAX_DETAIL = 200;

/** Replaces every occurrence of a secret's value with its fingerprint. */
export function scrubSecrets(text: string, secrets: ReadonlyArray<SecretInUse | undefined>): string {
  let out = text;
  for (const secret of secrets) {
    // An empty value would "match" everywhere; a short one cannot be a real token.
    if (secret && secret.value.length > 0) out = out.split(secret.value).join(secret.fingerprint);
  }
  return out;
}

/** One line, at most `max` characters: server text goes into single-line messages. */
export function oneLine(text: string, max = MAX_DETAIL): string {
  const flat = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
