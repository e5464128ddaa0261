import { checkHttpUrl } from '../../config/validate.js';
import { parseDuration } from '../../core/duration.js';

/** A key name as the config accepts it. */
export const KEY_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/**
 * One check per answer of the `init` wizard, with the rules the config itself is loaded with,
 * so a bad answer is refused as it is typed (the prompt stays, with the reason under it) and
 * no answer already given is lost to a config that would not load at the end.
 * Each returns true, or the one-line reason.
 */
export const answerChecks = {
  key: (value: string) => KEY_NAME.test(value.trim()) || 'a-z, 0-9, ".", "_", "-" (at most 63 characters, starting with a letter or digit)',
  url: (value: string) => reason(() => checkHttpUrl(value.trim(), 'url', false)),
  applierUrl: (value: string) => reason(() => checkHttpUrl(value.trim(), 'token endpoint URL', false)),
  authRef: (value: string) =>
    /^(env:[A-Za-z_][A-Za-z0-9_]{0,127}|file:\S{1,4096}|key:[a-z0-9][a-z0-9._-]{0,62})$/.test(value.trim()) || 'env:NAME, file:/path or key:OTHER-KEY',
  command: (value: string) => (value.trim().length > 0 && value.length <= 4096) || 'a command, e.g. /usr/local/bin/set-scim-token',
  interval: (value: string) =>
    reason(() => {
      if (parseDuration(value.trim(), 'interval') <= 0) throw new Error('interval: must be longer than 0');
    }),
  grace: (value: string) => reason(() => parseDuration(value.trim(), 'grace')),
};

function reason(check: () => unknown): true | string {
  try {
    check();
    return true;
  } catch (error) {
    return (error as Error).message;
  }
}
