import type { TargetConfig } from '../config/schema.js';
import type { AdapterContext } from '../stores/context.js';
import type { Target } from './target.js';

/** Opens a key's target; like stores, each adapter is imported on first use. */
export async function openTarget(keyName: string, config: TargetConfig, context: AdapterContext): Promise<Target> {
  switch (config.type) {
    case 'scim':
      return (await import('./scim/scim-target.js')).createScimTarget(keyName, config, context);
    case 'ldap':
      return (await import('./ldap/ldap-target.js')).createLdapTarget(keyName, config, context);
  }
}
