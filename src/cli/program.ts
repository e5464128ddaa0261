import { Argument, Command, InvalidArgumentError, Option } from 'commander';
import type { GlobalOptions } from './globals.js';
import type { Io } from './io.js';
import { buildInfo } from './commands/version.js';

/**
 * Every command and flag in one place. Actions import their command module lazily, so a
 * run pays only for the command it runs (and `--help` loads no adapter at all).
 */
export function buildProgram(run: (task: (globals: GlobalOptions, io: Io) => Promise<number>) => Promise<void>): Command {
  const program = new Command('provkey')
    .description('Generate, store, rotate, revoke, test and drill provisioning keys: SCIM bearer tokens and LDAP service-account passwords.')
    .version(buildInfo().version, '-V, --version')
    .option('-c, --config <file>', 'config file (default: $PROVKEY_CONFIG, else ./provkey.yaml)')
    .option('--state-dir <dir>', 'where the store, store key and audit log are written (default: $PROVKEY_STATE_DIR, else .provkey/ beside the config)')
    .option('--json', 'machine-readable output on stdout', false)
    .option('-y, --yes', 'answer yes to confirmations (required for destructive commands when not on a TTY)', false)
    .option('-n, --dry-run', 'show what would happen; change nothing', false)
    .option('-v, --verbose', 'log each protocol step to stderr', false)
    .option('-q, --quiet', 'print nothing on stdout but requested values and --json (errors and warnings still go to stderr)', false)
    .option('--no-color', 'no colour (also: NO_COLOR=1)')
    .option('--metrics-file <path>', 'after rotate, revoke, drill, status or test: rewrite this Prometheus textfile (node_exporter) atomically')
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ sortSubcommands: false, showGlobalOptions: true })
    .addHelpText('after', `
Exit codes:
  0  success
  1  an operation failed and was rolled back, or a connection test failed
  2  usage, config or input error (nothing was changed)
  3  lockout, or a state that needs a human (e.g. a revoked key the target still accepts)
  4  cancelled at a confirmation prompt
  5  a store or target was unreachable, timed out or failed after retries (try again later)
  6  a store or target refused provkey's credentials (permission denied, authentication failed)
  7  the Vault is sealed

Docs: docs/README.md`);

  const examples = (cmd: Command, lines: string[]) => cmd.addHelpText('after', `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}`);

  examples(
    program.command('init').description('write provkey.yaml and create the embedded store key (interactive on a TTY)')
      .option('--key <name>', 'first key to describe')
      .option('--target <type>', 'target type (scim)', 'scim')
      .option('--url <url>', 'SCIM base URL')
      .option('--applier <type>', 'how the app learns a new token: store | http | exec')
      .option('--applier-url <url>', 'token endpoint (http applier)')
      .option('--applier-auth-ref <ref>', 'admin token reference for the endpoint: env:NAME or file:/path')
      .option('--exec-command <command>', 'command receiving the token on stdin (exec applier)')
      .option('--format <type>', 'token | password | base64url | hex')
      .option('--interval <duration>', 'rotate every (e.g. 30d)')
      .option('--grace <duration>', 'keep the previous version working for (e.g. 24h, 0 for none)')
      .option('--passphrase-env <VAR>', 'encrypt the store with a passphrase from this env var instead of a key file')
      .option('--force', 'overwrite an existing config', false)
      .action((opts) => run(async (g, io) => (await import('./commands/init.js')).initCommand(opts, g, io))),
    ['provkey init', 'provkey init --key entra-scim --url https://app.example.com/scim/v2 --applier http --applier-url https://app.example.com/admin/tokens --applier-auth-ref env:APP_ADMIN_TOKEN'],
  );

  examples(
    program.command('generate').description('print a fresh key to stdout (its entropy and fingerprint go to stderr)')
      .addOption(new Option('-f, --format <type>', 'key format').choices(['token', 'password', 'base64url', 'hex']).default('token'))
      .option('--length <n>', 'password length, or random characters of a token', (v) => positiveInt(v, '--length'))
      .option('--bytes <n>', 'random bytes (base64url, hex)', (v) => positiveInt(v, '--bytes'))
      .option('--prefix <prefix>', 'token prefix, so scanners can find leaked tokens')
      .option('--exclude <chars>', 'characters a password must not contain')
      .option('--allow-weak', 'allow a policy under 128 bits of entropy', false)
      .action((opts) => run(async (_g, io) => (await import('./commands/generate.js')).generateCommand(opts, io))),
    ['provkey generate', 'provkey generate --format password --length 24 --exclude "\'\\"\\\\"', 'provkey generate --prefix acme | pbcopy'],
  );

  examples(
    program.command('check-token').description('check a token\'s prefix and checksum (reads stdin); exit 1 if invalid')
      .action(() => run(async (_g, io) => (await import('./commands/generate.js')).checkTokenCommand(io))),
    ['echo "$TOKEN" | provkey check-token'],
  );

  examples(
    program.command('add').argument('<key>', 'key name from the config').description('first version: generate, store, apply to the target, test')
      .action((key: string) => run(async (g, io) => (await import('./commands/add.js')).addCommand({ key }, g, io))),
    ['provkey add entra-scim-prod'],
  );

  examples(
    program.command('import').argument('<key>', 'key name from the config').description('adopt an existing value from stdin (tested before it is stored)')
      .option('--apply', 'push the value to the target instead of expecting it to be in use already', false)
      .option('--expires-at <date>', 'when the issuer expires this value (e.g. a vendor token: 2027-06-30); --due rotates before it')
      .action((key: string, opts) => run(async (g, io) => (await import('./commands/add.js')).importCommand({ key, apply: opts.apply, expiresAt: opts.expiresAt }, g, io))),
    ['vault kv get -field=token secret/app | provkey import entra-scim-prod', 'provkey import atlassian-scim --expires-at 2027-06-30 < token.txt'],
  );

  examples(
    program.command('rotate').argument('[keys...]', 'keys to rotate').description('rotate keys: claim, create, set, test, finish (rolls back on failure)')
      .option('--all', 'every key in the config', false)
      .option('--due', 'only what the schedule says is due (rotations and grace-period ends)', false)
      .option('--jitter <duration>', 'with --due: first wait a random time up to this long (at most 1h), so a fleet of hosts does not start at once')
      .option('--shard <i/n>', 'only the I-th of N stable slices of the keys, by a hash of their names (1 <= I <= N <= 1000)')
      .action((keys: string[], opts) => run(async (g, io) => (await import('./commands/rotate.js')).rotateCommand({ keys, all: opts.all, due: opts.due, jitter: opts.jitter, shard: opts.shard }, g, io))),
    ['provkey rotate entra-scim-prod', 'provkey rotate --due --json     # from cron', 'provkey rotate --due --jitter 10m --shard 2/4 --json   # host 2 of a fleet of 4', 'provkey rotate --all --dry-run'],
  );

  examples(
    program.command('revoke').argument('<key>', 'key name').description('make the target reject versions and disable them in the store (asks first)')
      .option('--fingerprint <fingerprint|id>', 'one version, by its fingerprint (or id, from "provkey history")')
      .option('--previous', 'only previous versions still in their grace period', false)
      .option('--current', 'only the current version', false)
      .action((key: string, opts) => run(async (g, io) => (await import('./commands/revoke.js')).revokeCommand({ key, ...opts }, g, io))),
    ['provkey revoke entra-scim-prod --previous', 'provkey revoke entra-scim-prod --fingerprint sha256:1a2b3c4d5e6f --yes'],
  );

  examples(
    program.command('test').argument('[keys...]', 'keys to test (default: all)').description('connection test with the current version (no change)')
      .option('--write', 'also create, patch and delete a throw-away user (SCIM)', false)
      .action((keys: string[], opts) => run(async (g, io) => (await import('./commands/test.js')).testCommand({ keys, write: opts.write }, g, io))),
    ['provkey test', 'provkey test entra-scim-prod --write --json'],
  );

  examples(
    program.command('status').argument('[keys...]', 'keys (default: all)').description('table of keys: store, target, current fingerprint, age, next rotation, last test')
      .action((keys: string[]) => run(async (g, io) => (await import('./commands/status.js')).statusCommand({ keys }, g, io))),
    ['provkey status', 'provkey status --json | jq \'.keys[] | select(.lastTest.ok == false)\''],
  );

  examples(
    program.command('history').argument('<key>', 'key name').description('versions and audit events of a key')
      .action((key: string) => run(async (g, io) => (await import('./commands/history.js')).historyCommand({ key }, g, io))),
    ['provkey history entra-scim-prod'],
  );

  examples(
    program.command('get').argument('<key>', 'key name').description('the current fingerprint; the value only with --reveal (audited)')
      .option('--reveal', 'print the secret value to stdout', false)
      .action((key: string, opts) => run(async (g, io) => (await import('./commands/get.js')).getCommand({ key, reveal: opts.reveal }, g, io))),
    ['provkey get entra-scim-prod', 'provkey get entra-scim-prod --reveal | app-config set scim.token'],
  );

  examples(
    program.command('drill').argument('<scenario>', 'compromise').argument('<key>', 'key name').description('simulate a leaked key: emergency rotation, revoke, proof, timings')
      .option('--rto <duration>', 'recovery time objective', '60s')
      .action((scenario: string, key: string, opts) => run(async (g, io) => (await import('./commands/drill.js')).drillCommand({ scenario, key, rto: opts.rto }, g, io))),
    ['provkey drill compromise ldap-provisioner --dry-run', 'provkey drill compromise entra-scim-prod --rto 60s --yes --json'],
  );

  examples(
    program.command('scan').argument('<paths...>', 'files or directories (with --git: repositories)').description('find leaked provkey tokens by prefix and checksum, and name the key and version of each (never the value)')
      .option('--git', 'scan every commit of the repositories\' history (git log -p --all) instead of their files', false)
      .option('--prefix <prefix>', 'also look for this token prefix (repeatable; the configured keys\' prefixes are always used)', (v: string, all: string[]) => [...all, v], [] as string[])
      .option('--max-file-size <size>', 'skip files larger than this (e.g. 10m, 512k)', '10m')
      .addHelpText('after', '\nExit codes of scan: 0 no token found, 1 tokens found but none live (revoked or unknown), 3 a LIVE version leaked (contain it), 2 usage, 5/6/7 a store could not be read to identify a finding.')
      .action((paths: string[], opts) => run(async (g, io) => (await import('./commands/scan.js')).scanCommand({ paths, git: opts.git, prefix: opts.prefix, maxFileSize: opts.maxFileSize }, g, io))),
    ['provkey scan .', 'provkey scan --git . --json     # in CI: exit 3 if a live key is in the history', 'provkey scan /var/log/app --prefix acme'],
  );

  const audit = examples(program.command('audit').description('the hash-chained audit log'), ['provkey audit verify', 'provkey audit verify --json']);
  examples(
    audit.command('verify').description('check that no audit line was edited, removed or reordered (exit 3 if it was)')
      .action(() => run(async (g, io) => (await import('./commands/audit.js')).auditVerifyCommand(g, io))),
    ['provkey audit verify'],
  );
  examples(
    audit.command('accept-store').argument('<store>', 'embedded file store name').description('accept a store the audit log disagrees with (a backup restored on purpose), audited')
      .action((store: string) => run(async (g, io) => (await import('./commands/audit.js')).auditAcceptStoreCommand(store, g, io))),
    ['provkey audit accept-store default --yes'],
  );

  examples(
    program.command('migrate').argument('<keys...>', 'keys to move').description('move keys with their history to another store, verify, then retire the source')
      .requiredOption('--to <store>', 'destination store name from the config')
      .action((keys: string[], opts) => run(async (g, io) => (await import('./commands/migrate.js')).migrateCommand({ keys, to: opts.to }, g, io))),
    ['provkey migrate entra-scim-prod --to vault'],
  );
  examples(
    program.command('completion').addArgument(new Argument('<shell>', 'bash | zsh | fish').choices(['bash', 'zsh', 'fish'])).description('print a shell completion script, generated from this command tree')
      .action((shell: string) => run(async (_g, io) => (await import('./commands/completion.js')).completionCommand(shell, io))),
    ['source <(provkey completion bash)', 'provkey completion zsh > "${fpath[1]}/_provkey"', 'provkey completion fish > ~/.config/fish/completions/provkey.fish'],
  );

  examples(
    program.command('version').description('provkey\'s version and build, and the Node.js it runs on')
      .action(() => run(async (_g, io) => (await import('./commands/version.js')).versionCommand(io))),
    ['provkey version', 'provkey version --json'],
  );
  return program;
}

/** At most 9 digits: the real bound is checked with the policy, but no number here is unsafe or huge. */
function positiveInt(value: string, flag: string): number {
  if (!/^\d{1,9}$/.test(value) || Number(value) <= 0) {
    throw new InvalidArgumentError(`${flag}: not a positive whole number of at most 9 digits`);
  }
  return Number(value);
}
