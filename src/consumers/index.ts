import type { ResolvedKey } from '../config/load.js';
import { consumerNameOf } from '../config/validate.js';
import type { AdapterContext } from '../stores/context.js';
import type { Consumer } from './consumer.js';

/** Opens a key's consumers in config order; like targets, each adapter is imported on first use. */
export async function openConsumers(key: ResolvedKey, context: AdapterContext): Promise<Consumer[]> {
  const target = key.config.target;
  const targetUrl = target.type === 'scim' ? target.url : '';
  return Promise.all(
    key.config.consumers.map(async (config, index) => {
      const name = consumerNameOf(config, index);
      const field = `keys.${key.name}.consumers.${index}`;
      switch (config.type) {
        case 'entra':
          return (await import('./entra.js')).createEntraConsumer({ keyName: key.name, name, field, targetUrl, config, context });
        case 'okta':
          return (await import('./okta.js')).createOktaConsumer({ name, field, targetUrl, config, context });
        case 'file':
          return (await import('./file.js')).createFileConsumer({ name, config, context });
        case 'exec':
          return (await import('./exec.js')).createExecConsumer({ keyName: key.name, name, field, config, context });
        case 'store':
          return (await import('./store.js')).createStoreConsumer({ keyName: key.name, name, field, config, context });
      }
    }),
  );
}
