// Crash tests for the other operations that run the rotation protocol: `drill compromise`
// (no overlap, the leaked version must end rejected) and `add` (no version before it).

import { describe, expect, it } from 'vitest';
import { bearerStatus, describeRun } from '../harness/cli.ts';
import { crashSuite, expectConverged, expectKilled, KEY, learnStoredSecrets, type ResultsJson, type StatusJson } from './fixture.ts';

describe('SIGKILL during drill compromise and add', () => {
  const suite = crashSuite({ propagationMs: 100 });

  it.each(['after-set', 'after-test'] as const)('a drill killed at %s: the leaked version ends rejected, the new one accepted', async (point) => {
    // The key normally rotates with overlap; a drill must contain the leak with none.
    const fixture = suite.key({ grace: '1h', applier: 'http' });
    const cli = fixture.cli;
    const baseline = await suite.server.acceptedDigests();
    expect((await cli.run(['add', KEY])).code).toBe(0);
    const leaked = await cli.reveal(KEY, `${KEY} leaked`);

    const crashed = await cli.run(['drill', 'compromise', KEY, '--yes'], { env: { PROVKEY_FAULT: point } });
    expectKilled(crashed);
    await learnStoredSecrets(cli, fixture.dir);

    const { result: resumed, data } = await cli.json<ResultsJson>(['rotate', KEY]);
    expect(resumed.code, describeRun(resumed)).toBe(0);
    expect(data.results[0]).toMatchObject({ outcome: 'resumed', ok: true });

    const { history } = await expectConverged(cli, suite.server, baseline, { rejected: [leaked] });
    expect(history.versions.map((v) => v.label)).toEqual(['revoked', 'current']);
    expect(history.events.map((e) => e.event)).toContain('drill.resumed');
  });

  it('a drill killed before set: the next rotate rolls the drill back and rotates normally', async () => {
    const fixture = suite.key({ grace: '1h', applier: 'http' });
    const cli = fixture.cli;
    const baseline = await suite.server.acceptedDigests();
    expect((await cli.run(['add', KEY])).code).toBe(0);
    const leaked = await cli.reveal(KEY, `${KEY} leaked`);

    expectKilled(await cli.run(['drill', 'compromise', KEY, '--yes'], { env: { PROVKEY_FAULT: 'before-set' } }));
    await learnStoredSecrets(cli, fixture.dir);
    expect(await bearerStatus(suite.server.url, leaked)).toBe(200);

    const { result: resumed, data } = await cli.json<ResultsJson>(['rotate', KEY]);
    expect(resumed.code, describeRun(resumed)).toBe(0);
    expect(data.results[0]).toMatchObject({ outcome: 'rotated', ok: true });
    await expectConverged(cli, suite.server, baseline, { accepted: [leaked] });
  });

  it.each(['before-set', 'after-set', 'after-test'] as const)('add killed at %s: the next add converges to exactly one working version', async (point) => {
    const fixture = suite.key({ grace: '0', applier: 'exec' });
    const cli = fixture.cli;
    const baseline = await suite.server.acceptedDigests();

    expectKilled(await cli.run(['add', KEY], { env: { PROVKEY_FAULT: point } }));
    await learnStoredSecrets(cli, fixture.dir);
    const { data: between } = await cli.json<StatusJson>(['status', KEY]);
    expect(between.keys[0]?.current).toBeNull();

    const again = await cli.run(['--json', 'add', KEY]);
    expect(again.code, describeRun(again)).toBe(0);
    const outcome = (JSON.parse(again.stdout) as ResultsJson).results[0]?.outcome;
    // Where the target already had the value, the add is finished; else it starts over.
    expect(outcome).toBe(point === 'before-set' ? 'added' : 'resumed');
    await expectConverged(cli, suite.server, baseline);
  });

  it('add killed after finish: the key works and a second add refuses to overwrite it', async () => {
    const fixture = suite.key({ grace: '0', applier: 'exec' });
    const cli = fixture.cli;
    const baseline = await suite.server.acceptedDigests();
    expectKilled(await cli.run(['add', KEY], { env: { PROVKEY_FAULT: 'after-finish' } }));
    await learnStoredSecrets(cli, fixture.dir);
    const again = await cli.run(['add', KEY]);
    expect(again.code, describeRun(again)).toBe(2);
    expect(again.stderr).toContain('already has a current version');
    await expectConverged(cli, suite.server, baseline);
  });
});

