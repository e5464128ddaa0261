// One contender of the concurrent-claim proof (test/integration/store-azure-claim.test.ts),
// run as its own process by Node's type stripping. Line protocol on stdin/stdout, so the
// parent can start every contender at the same instant (a barrier, no sleeps):
//   parent → {"config":…,"env":…}      worker → ready
//   parent → read KEY                  worker → read REVISION
//   parent → claim ID                  worker → won | lost | error MESSAGE
// The store comes from dist/ (npm run build), as the CLI's does.

import { createInterface } from 'node:readline';

const { createAzureStore } = (await import(new URL('../../../dist/stores/azure.js', import.meta.url).href)) as typeof import('../../../src/stores/azure.js');

const lines = createInterface({ input: process.stdin });
const say = (line: string) => process.stdout.write(`${line}\n`);
let store: Awaited<ReturnType<typeof createAzureStore>> | undefined;
let key = '';
let revision = '';
let versions: unknown = [];

for await (const line of lines) {
  if (!store) {
    const { config, env } = JSON.parse(line) as { config: never; env: Record<string, string> };
    store = await createAzureStore('azure', config, {
      configDir: process.cwd(),
      env,
      resolveSecret: async (ref: string) => env[ref.slice('env:'.length)] ?? '',
      debug: () => undefined,
    });
    say('ready');
    continue;
  }
  const [verb, arg] = line.split(' ');
  try {
    if (verb === 'read') {
      key = arg!;
      const record = await store.read(key);
      if (!record) throw new Error(`${key} does not exist`);
      revision = record.revision;
      versions = record.versions;
      say(`read ${revision}`);
    } else if (verb === 'claim') {
      const at = new Date();
      const claim = { id: arg!, operation: 'rotate', owner: { host: 'claim-proof', pid: process.pid }, startedAt: at.toISOString(), expiresAt: new Date(at.getTime() + 600_000).toISOString(), step: 'claimed', overlap: true };
      try {
        await store.update(key, revision, { versions: versions as never, state: { claim } as never });
        say('won');
      } catch (error) {
        if ((error as { kind?: string }).kind === 'conflict') say('lost');
        else throw error;
      }
    } else if (verb === 'exit') {
      break;
    }
  } catch (error) {
    say(`error ${(error as Error).message.replace(/\n/g, ' ')}`);
  }
}
await store?.close();
process.exit(0);
