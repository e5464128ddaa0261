// Crash tests inside the undo paths: a revoke killed after the target dropped a version but
// before the store disabled it, and a rollback killed after the target was set back but before
// the store forgot the pending version. The next run must finish the job, with no lockout.

import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { bearerStatus, describeRun, eventually, readStoredVersions } from '../harness/cli.ts';
import { crashSuite, expectConverged, expectKilled, KEY, learnStoredSecrets, newlyAccepted, type HistoryJson, type ResultsJson } from './fixture.ts';

describe('SIGKILL inside revoke and rollback', () => {
  const suite = crashSuite({ propagationMs: 100 });

  it('revoke --previous killed after the target dropped the version: the next revoke proves it and disables it', async () => {
    const fixture = suite.key({ grace: '1h', applier: 'http' });
    const cli = fixture.cli;
    const baseline = await suite.server.acceptedDigests();
    expect((await cli.run(['add', KEY])).code).toBe(0);
    const first = await cli.reveal(KEY, 'first');
    expect((await cli.run(['rotate', KEY])).code).toBe(0);

    expectKilled(await cli.run(['revoke', KEY, '--previous', '--yes'], { env: { PROVKEY_FAULT: 'after-retire' } }));
    await learnStoredSecrets(cli, fixture.dir);
    // The target already dropped it, but the store still holds its value.
    expect(await eventually(() => bearerStatus(suite.server.url, first), 401)).toBe(401);
    expect((await readStoredVersions(fixture.dir, KEY)).find((v) => v.label === 'revoked')?.value !== null, 'the store still holds the value').toBe(true);

    const again = await cli.json<ResultsJson>(['revoke', KEY, '--previous', '--yes']);
    expect(again.result.code, describeRun(again.result)).toBe(0);
    expect((await readStoredVersions(fixture.dir, KEY)).find((v) => v.label === 'revoked')?.value === null, 'the value is erased').toBe(true);
    const { history } = await expectConverged(cli, suite.server, baseline, { rejected: [first] });
    expect(history.events.map((e) => e.event)).toContain('revoke.resumed');
  });

  it('a rollback killed after the target was set back: the next run finishes the rollback, the current version works', async () => {
    const fixture = suite.key({ grace: '1h', applier: 'http', propagationTimeout: '1s' });
    const cli = fixture.cli;
    const baseline = await suite.server.acceptedDigests();
    expect((await cli.run(['add', KEY])).code).toBe(0);
    const current = await cli.reveal(KEY, 'current');

    // A deaf app: its hook exits 0 but never learns the token, so the test fails and provkey rolls back.
    const config = cli.defaults.config!;
    writeFileSync(config, readFileSync(config, 'utf8').replace(/applier: .*/, `applier: { type: exec, command: ["${process.execPath}", "-e", "process.stdin.resume(); process.stdin.on('end', () => process.exit(0))"] }`));

    expectKilled(await cli.run(['rotate', KEY], { env: { PROVKEY_FAULT: 'after-rollback' } }));
    await learnStoredSecrets(cli, fixture.dir);
    const crashed = await cli.json<HistoryJson>(['history', KEY]);
    expect(crashed.data.versions.map((v) => v.label)).toContain('pending');

    // The next run converges the rollback, then tries a fresh rotation, which the deaf app also refuses.
    const next = await cli.json<ResultsJson>(['rotate', KEY]);
    expect(next.result.code, describeRun(next.result)).toBe(1);
    expect(next.data.results[0]!.outcome).toBe('rolled_back');
    const after = await cli.json<HistoryJson>(['history', KEY]);
    expect(after.data.versions.map((v) => v.label)).toEqual(['current', 'failed', 'failed']);
    expect(after.data.events.filter((e) => e.event === 'rotate.rolled_back')).toHaveLength(2);
    expect(await bearerStatus(suite.server.url, current)).toBe(200);
    expect((await cli.run(['audit', 'verify'])).code).toBe(0);
    expect(await newlyAccepted(suite.server, baseline), 'no failed version is accepted').toHaveLength(1);
  });
});
