// Crash tests: provkey is killed with SIGKILL (PROVKEY_FAULT, src/engine/fault.ts) at every
// step of the rotation protocol, in both overlap modes, and the next run must converge with
// no lockout: exactly one current version, nothing left pending, the real SCIM server
// accepting exactly the live versions (and, without overlap, rejecting the old one), the
// audit chain intact. Every line provkey printed is scanned for every secret the test saw.

import { describe, expect, it } from 'vitest';
import { bearerStatus, describeRun, eventually } from '../harness/cli.ts';
import { crashSuite, CONVERGENCE, expectConverged, expectKilled, FAULT_POINTS, KEY, learnStoredSecrets, MODES, type ResultsJson, type StatusJson } from './fixture.ts';

describe.each(MODES)('SIGKILL during rotate, $name', (mode) => {
  const suite = crashSuite({ propagationMs: 100 });

  it.each(FAULT_POINTS)('killed at %s: the next rotate converges with no lockout', async (point) => {
    const fixture = suite.key(mode);
    const cli = fixture.cli;
    const baseline = await suite.server.acceptedDigests();

    const added = await cli.run(['add', KEY]);
    expect(added.code, describeRun(added)).toBe(0);
    const old = await cli.reveal(KEY, `${KEY} before the crash`);

    const crashed = await cli.run(['rotate', KEY], { env: { PROVKEY_FAULT: point } });
    expectKilled(crashed);
    await learnStoredSecrets(cli, fixture.dir);

    // What the crash left behind: a claim (except after finish), and the old version still in use.
    const { data: between } = await cli.json<StatusJson>(['status', KEY]);
    // After finish without overlap a revoke claim stays until the old version is proven rejected.
    expect(between.keys[0]?.state).toBe(point === 'after-finish' && mode.overlap ? 'ok' : 'rotating');
    if (!mode.overlap && (point === 'after-set' || point === 'after-test' || point === 'after-finish')) {
      // set({replace: true}) makes the old version stop working as part of the change.
      expect(await eventually(() => bearerStatus(suite.server.url, old), 401), 'set with replace must retire the old version at the target').toBe(401);
    } else if (point !== 'after-finish') {
      expect(await bearerStatus(suite.server.url, old), 'before the new version is in place the old one must keep working').toBe(200);
    }

    const { result: resumed, data } = await cli.json<ResultsJson>(['rotate', KEY]);
    expect(resumed.code, describeRun(resumed)).toBe(0);
    expect(data.results).toHaveLength(1);
    // Killed after a no-overlap finish, only the old version's proof was left: finishing it completes that rotation.
    const outcome = point === 'after-finish' && !mode.overlap ? 'resumed' : CONVERGENCE[point].outcome;
    expect(data.results[0]).toMatchObject({ key: KEY, ok: true, exitCode: 0, outcome });

    const { current, history } = await expectConverged(cli, suite.server, baseline, mode.overlap ? { accepted: [old] } : { rejected: [old] });
    expect(current).not.toBe(old);
    const expectedEvent = CONVERGENCE[point].event;
    if (expectedEvent) expect(history.events.map((e) => e.event)).toContain(expectedEvent);
    // The version that was current before the crash: revoked without overlap, in its grace period with it.
    expect(history.versions[0]?.label).toBe(mode.overlap ? 'previous' : 'revoked');
  });
});

