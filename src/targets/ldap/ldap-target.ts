// Placeholder until the LDAP target lands (see issue 4).
import type { LdapTargetConfig } from '../../config/schema.js';
import { ConfigError } from '../../core/errors.js';
import type { AdapterContext } from '../../stores/context.js';
import type { Target } from '../target.js';

export async function createLdapTarget(keyName: string, _config: LdapTargetConfig, _context: AdapterContext): Promise<Target> {
  throw new ConfigError(`keys.${keyName}.target.type: the ldap target is not available in this build`, 'config.unsupported');
}
