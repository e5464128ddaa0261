import { createHash } from 'node:crypto';

/** The only form in which a secret appears in output, logs and audit: "sha256:" + 12 hex chars. */
export function fingerprint(secret: string): string {
  return `sha256:${createHash('sha256').update(secret, 'utf8').digest('hex').slice(0, 12)}`;
}
