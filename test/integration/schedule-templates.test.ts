// The scheduling templates operators copy, run for real: the systemd service + timer pair
// (systemd-analyze verify, then the service's own ExecStart arguments against the built CLI),
// and the GitHub Actions workflow, whose shell steps run here as a runner would run them:
// build the package from a clean tree (npm ci, npm pack), install the tarball, rotate what is
// due against the real SCIM server, write the step summary.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearerStatus, describeRun, PROVKEY_BIN, SecretScanner } from '../harness/cli.ts';
import { ensureTestTools, PROJECT_NODE, REPO_ROOT, runCommand, SYSTEM_PATH } from '../harness/installed-cli.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

const ADMIN_TOKEN = `scim-admin-${randomBytes(18).toString('base64url')}`;
const SYSTEMD_DIR = path.join(REPO_ROOT, 'docs/systemd');
const WORKFLOW = path.join(REPO_ROOT, '.github/workflows/scheduled-rotation.yml');
const NODE_PATH = [path.dirname(PROJECT_NODE), ...SYSTEM_PATH];
const RUNBOOK = path.join(REPO_ROOT, 'docs/runbooks/cron-kubernetes.md');

interface Container {
  command?: string[];
  args?: string[];
  env?: { name: string; value: string }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}

/** The container of each Kubernetes example in the runbook, by the CronJob's name. */
function runbookContainers(): Map<string, { container: Container; completions?: number }> {
  const found = new Map<string, { container: Container; completions?: number }>();
  for (const block of readFileSync(RUNBOOK, 'utf8').matchAll(/```yaml\n([\s\S]*?)```/g)) {
    const doc = parseYaml(block[1]!) as { kind?: string; metadata?: { name: string }; spec?: { jobTemplate: { spec: { completions?: number; template: { spec: { containers: Container[] } } } } } };
    if (doc?.kind !== 'CronJob') continue;
    const job = doc.spec!.jobTemplate.spec;
    found.set(doc.metadata!.name, { container: job.template.spec.containers[0]!, ...(job.completions ? { completions: job.completions } : {}) });
  }
  return found;
}

function scimKeyYaml(server: ScimServer, interval = '30d'): string {
  return ['keys:', '  app:', `    rotation: { interval: ${interval}, grace: 1h }`, '    target:', '      type: scim', `      url: ${JSON.stringify(server.url)}`, '      propagationTimeout: 5s',
    `      applier: { type: http, url: ${JSON.stringify(server.adminUrl)}, authRef: "env:SCIM_ADMIN_TOKEN" }`, ''].join('\n');
}

/** `Key=value` lines of one section of a unit file. */
function unitSection(file: string, section: string): Map<string, string[]> {
  const values = new Map<string, string[]>();
  let current = '';
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const header = /^\[(.+)\]$/.exec(line.trim());
    if (header) current = header[1]!;
    const pair = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (pair && current === section) values.set(pair[1]!, [...(values.get(pair[1]!) ?? []), pair[2]!]);
  }
  return values;
}

describe('scheduling templates', () => {
  const scanner = new SecretScanner();
  let server: ScimServer;
  let dir: string;

  beforeAll(async () => {
    ensureTestTools();
    server = await startScimServer({ adminToken: ADMIN_TOKEN, propagationMs: 50 });
    scanner.addSecret(ADMIN_TOKEN, 'SCIM admin token');
    dir = mkdtempSync(path.join(tmpdir(), 'provkey-templates-'));
  });
  afterAll(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    scanner.assertClean();
  });

  it('systemd: the service and timer pass systemd-analyze verify with no warning', () => {
    const which = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' });
    expect(which.status, 'systemd-analyze is required (test/harness/install/tools.sh installs it)').toBe(0);
    // A root of its own: the system's units, the two files, and the ExecStart binary in place.
    const root = path.join(dir, 'systemd-root');
    mkdirSync(path.join(root, 'etc/systemd/system'), { recursive: true });
    mkdirSync(path.join(root, 'usr/local/bin'), { recursive: true });
    cpSync('/usr/lib/systemd/system', path.join(root, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
    for (const unit of ['provkey-rotate.service', 'provkey-rotate.timer']) copyFileSync(path.join(SYSTEMD_DIR, unit), path.join(root, 'etc/systemd/system', unit));
    const exec = unitSection(path.join(SYSTEMD_DIR, 'provkey-rotate.service'), 'Service').get('ExecStart')![0]!.split(' ')[0]!;
    writeFileSync(path.join(root, exec), '#!/bin/sh\n');
    chmodSync(path.join(root, exec), 0o755);
    const verify = spawnSync('systemd-analyze', ['verify', `--root=${root}`, ...['provkey-rotate.service', 'provkey-rotate.timer'].map((u) => path.join(root, 'etc/systemd/system', u))], { encoding: 'utf8' });
    expect(verify.status, verify.stderr).toBe(0);
    expect(verify.stderr.trim(), 'systemd-analyze warned').toBe('');
    expect(unitSection(path.join(SYSTEMD_DIR, 'provkey-rotate.timer'), 'Timer').get('OnCalendar')).toHaveLength(1);
  });

  it('systemd: the service runs its ExecStart arguments from a read-only config with its state dir', async () => {
    const service = unitSection(path.join(SYSTEMD_DIR, 'provkey-rotate.service'), 'Service');
    const env = Object.fromEntries((service.get('Environment') ?? []).map((e) => e.split('=', 2) as [string, string]));
    expect(env).toMatchObject({ PROVKEY_CONFIG: '/etc/provkey/provkey.yaml', PROVKEY_STATE_DIR: '/var/lib/provkey' });
    expect(service.get('StateDirectory')).toEqual(['provkey']);
    const args = service.get('ExecStart')![0]!.split(' ').slice(1);
    expect(args).toEqual(['rotate', '--due', '--json']);
    // The same variables, pointed at this test's /etc/provkey and /var/lib/provkey.
    const etc = path.join(dir, 'etc-provkey');
    const state = path.join(dir, 'var-lib-provkey');
    mkdirSync(etc);
    // interval 1ms: the key is due by the time the timer's run starts.
    writeFileSync(path.join(etc, 'provkey.yaml'), scimKeyYaml(server, '1ms'));
    const vars = { PATH: SYSTEM_PATH.join(':'), PROVKEY_CONFIG: path.join(etc, 'provkey.yaml'), PROVKEY_STATE_DIR: state, SCIM_ADMIN_TOKEN: ADMIN_TOKEN };
    const added = scanner.capture(await runCommand(PROJECT_NODE, [PROVKEY_BIN, 'add', 'app'], vars, { cwd: dir }));
    expect(added.code, describeRun(added)).toBe(0);
    chmodSync(etc, 0o555);
    const run = scanner.capture(await runCommand(PROJECT_NODE, [PROVKEY_BIN, ...args], vars, { cwd: '/' }));
    chmodSync(etc, 0o755);
    expect(run.code, describeRun(run)).toBe(0);
    expect(JSON.parse(run.stdout).results[0]).toMatchObject({ key: 'app', outcome: 'rotated' });
    expect(existsSync(path.join(state, 'store.enc'))).toBe(true);
  });

  it('Kubernetes: the CronJob and the Indexed Job containers run as written (every index once)', async () => {
    const containers = runbookContainers();
    expect([...containers.keys()].sort()).toEqual(['provkey-rotate', 'provkey-rotate-sharded']);
    // The image's `provkey` on PATH; the pod's /config (read-only) and /state are temp dirs here.
    const bin = path.join(dir, 'k8s-bin');
    mkdirSync(bin);
    writeFileSync(path.join(bin, 'provkey'), `#!/bin/sh\nexec ${JSON.stringify(PROJECT_NODE)} ${JSON.stringify(PROVKEY_BIN)} "$@"\n`, { mode: 0o755 });
    const mounts: Record<string, string> = { '/config': path.join(dir, 'k8s-config'), '/state': path.join(dir, 'k8s-state') };
    mkdirSync(mounts['/config']!);
    const names = ['app-a', 'app-b', 'app-c', 'app-d', 'app-e', 'app-f', 'app-g', 'app-h'];
    const yaml = scimKeyYaml(server, '1ms');
    const one = yaml.slice('keys:\n'.length);
    writeFileSync(path.join(mounts['/config']!, 'provkey.yaml'), `keys:\n${names.map((n) => one.replace('  app:', `  ${n}:`)).join('')}`);
    const podEnv = (container: Container) => ({
      PATH: [bin, ...SYSTEM_PATH].join(':'),
      SCIM_ADMIN_TOKEN: ADMIN_TOKEN,
      ...Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value.replace(/^\/(config|state)/, (m) => mounts[m]!)])),
    });
    for (const container of [...containers.values()].map((c) => c.container)) {
      expect(container.volumeMounts?.find((m) => m.mountPath === '/config')?.readOnly).toBe(true);
      expect(podEnv(container)).toMatchObject({ PROVKEY_CONFIG: path.join(mounts['/config']!, 'provkey.yaml'), PROVKEY_STATE_DIR: mounts['/state'] });
    }
    const plain = containers.get('provkey-rotate')!.container;
    for (const name of names) {
      const added = scanner.capture(await runCommand(path.join(bin, 'provkey'), ['add', name], podEnv(plain), { cwd: '/' }));
      expect(added.code, describeRun(added)).toBe(0);
    }
    chmodSync(mounts['/config']!, 0o555);
    try {
      // The CronJob: ENTRYPOINT provkey + its args, as a dry run (its --jitter would wait up to 10m).
      expect(plain.command).toBeUndefined();
      const planned = scanner.capture(await runCommand(path.join(bin, 'provkey'), [...plain.args!, '--dry-run'], podEnv(plain), { cwd: '/' }));
      expect(planned.code, describeRun(planned)).toBe(0);
      expect((JSON.parse(planned.stdout) as { plan: { key: string; wouldRotate: boolean }[] }).plan.filter((p) => p.wouldRotate).map((p) => p.key).sort()).toEqual(names);

      // The Indexed Job: one pod per JOB_COMPLETION_INDEX, for real; together they rotate every key once.
      const sharded = containers.get('provkey-rotate-sharded')!;
      expect(sharded.completions).toBe(4);
      const rotated: string[] = [];
      for (let index = 0; index < sharded.completions!; index++) {
        const [command, ...args] = sharded.container.command!;
        const pod = scanner.capture(await runCommand(command!, args, { ...podEnv(sharded.container), JOB_COMPLETION_INDEX: String(index) }, { cwd: '/' }));
        expect(pod.code, describeRun(pod)).toBe(0);
        const results = (JSON.parse(pod.stdout) as { results: { key: string; outcome: string }[] }).results;
        for (const r of results) expect(r.outcome, r.key).toBe('rotated');
        rotated.push(...results.map((r) => r.key));
      }
      expect(rotated.sort()).toEqual(names);
    } finally {
      chmodSync(mounts['/config']!, 0o755);
    }
  });

  it('GitHub Actions: build, install the tarball, rotate what is due, write the summary', async () => {
    const workflow = parseYaml(readFileSync(WORKFLOW, 'utf8')) as {
      on: { schedule: { cron: string }[] };
      env: Record<string, string>;
      jobs: { rotate: { steps: { name?: string; uses?: string; run?: string; with?: Record<string, unknown>; 'working-directory'?: string }[] } };
    };
    expect(workflow.on.schedule[0]!.cron).toMatch(/^\S+ \S+ \S+ \S+ \S+$/);
    const text = readFileSync(WORKFLOW, 'utf8');
    expect(text).not.toMatch(/\bnpx\b/);
    expect(text).not.toMatch(/npm install[^\n]*\sprovkey(@|\s|$)/);
    const steps = workflow.jobs.rotate.steps;
    const source = steps.find((s) => s.with?.repository === 'provkey/provkey');
    expect(source?.with?.path).toBe('.provkey-src');

    // The runner's world: the user's repository (with provkey.yaml), provkey's source checked
    // out at .provkey-src (a clean tree of this checkout), RUNNER_TEMP, a step summary file.
    const workspace = path.join(dir, 'workspace');
    const runnerTemp = path.join(dir, 'runner-temp');
    mkdirSync(workspace);
    mkdirSync(runnerTemp);
    writeFileSync(path.join(workspace, 'provkey.yaml'), scimKeyYaml(server));
    const listed = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: REPO_ROOT, encoding: 'utf8' });
    for (const file of listed.stdout.split('\0').filter(Boolean)) {
      if (!existsSync(path.join(REPO_ROOT, file))) continue;
      mkdirSync(path.dirname(path.join(workspace, '.provkey-src', file)), { recursive: true });
      copyFileSync(path.join(REPO_ROOT, file), path.join(workspace, '.provkey-src', file));
    }
    const summary = path.join(dir, 'step-summary.md');
    const prefix = path.join(dir, 'npm-global');
    // setup-node puts Node 24 first on PATH; a global npm install lands in the runner's prefix.
    // Only the registry's cache here: a runner has the network, this host prefers what npm ci cached.
    const env = { PATH: [path.join(prefix, 'bin'), ...NODE_PATH].join(':'), RUNNER_TEMP: runnerTemp, GITHUB_STEP_SUMMARY: summary, NPM_CONFIG_PREFIX: prefix, npm_config_prefer_offline: 'true', CI: 'true' };
    const stepEnv = { PROVKEY_CONFIG: 'provkey.yaml', PROVKEY_STATE_DIR: path.join(runnerTemp, 'provkey-state'), SCIM_ADMIN_TOKEN: ADMIN_TOKEN };

    const runStep = async (name: string, extra: Record<string, string> = {}) => {
      const step = steps.find((s) => s.name === name);
      expect(step?.run, name).toBeDefined();
      const cwd = step!['working-directory'] ? path.join(workspace, step!['working-directory']) : workspace;
      return scanner.capture(await runCommand('bash', ['-eo', 'pipefail', '-c', step!.run!], { ...env, ...extra }, { cwd, timeoutMs: 170_000 }));
    };
    const build = await runStep('Build the provkey package');
    expect(build.code, describeRun(build)).toBe(0);
    const install = await runStep('Install provkey from the tarball');
    expect(install.code, describeRun(install)).toBe(0);
    expect(install.stdout).toContain('npm package');

    // A key added by the installed CLI, due at once (interval 1ms) for the scheduled run.
    writeFileSync(path.join(workspace, 'provkey.yaml'), scimKeyYaml(server, '1ms'));
    const added = scanner.capture(await runCommand(path.join(prefix, 'bin', 'provkey'), ['add', 'app'], { ...env, ...stepEnv }, { cwd: workspace }));
    expect(added.code, describeRun(added)).toBe(0);
    const rotate = await runStep('Rotate what is due', stepEnv);
    expect(rotate.code, describeRun(rotate)).toBe(0);
    const rotation = JSON.parse(readFileSync(path.join(workspace, 'rotation.json'), 'utf8')) as { results: { key: string; outcome: string }[] };
    scanner.record('rotation.json', JSON.stringify(rotation));
    expect(rotation.results[0]).toMatchObject({ key: 'app', outcome: 'rotated' });
    const summaryStep = await runStep('Summary');
    expect(summaryStep.code, describeRun(summaryStep)).toBe(0);
    expect(readFileSync(summary, 'utf8')).toMatch(/^- app: rotated /m);

    const current = scanner.capture(await runCommand(path.join(prefix, 'bin', 'provkey'), ['get', 'app', '--reveal'], { ...env, ...stepEnv }, { cwd: workspace }), 'stderr');
    expect(await bearerStatus(server.url, scanner.addSecret(current.stdout.trim(), 'app after the workflow'))).toBe(200);
  }, 200_000);
});
