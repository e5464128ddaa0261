// The seam is faithful: a real provkey process (the built CLI) is SIGKILLed at every boundary
// of a rotation through the same seam the in-process fault matrix drives
// (PROVKEY_FAULT_AT=<boundary>:kill-before|kill-after), and the next run converges with no
// lockout against the real SCIM server. The boundaries are counted in-process first: the
// subprocess is killed at each of them and runs to the end at the first index past them, so
// both count the same side effects in the same order.

import { describe, expect, it } from 'vitest';
import { describeRun } from '../harness/cli.ts';
import { FaultPlan, withHook } from '../harness/fault-matrix/matrix.ts';
import { runInProcess } from '../harness/fault-matrix/in-process-cli.ts';
import { ADMIN_TOKEN, crashSuite, expectConverged, expectKilled, KEY, learnStoredSecrets, type ResultsJson } from './fixture.ts';

describe('SIGKILL through the seam at every boundary of a rotation (grace 1h, http applier)', () => {
  const suite = crashSuite({ propagationMs: 0 });
  const mode = { grace: '1h', applier: 'http' as const };

  it('the subprocess dies at each boundary the in-process seam counted, and the next run converges', async () => {
    // The in-process CLI reads the applier's admin token from this process's environment.
    process.env.SCIM_ADMIN_TOKEN = ADMIN_TOKEN;
    const counted = suite.key(mode);
    expect((await runInProcess(['--config', `${counted.dir}/provkey.yaml`, 'add', KEY])).code).toBe(0);
    const plan = new FaultPlan();
    const clean = await withHook(plan, () => runInProcess(['--config', `${counted.dir}/provkey.yaml`, 'rotate', KEY]));
    expect(clean.code, clean.stderr).toBe(0);
    const boundaries = plan.calls.length;
    // Reads, claim+create, setting, the applier, the test's requests, audit, finish (issue 8 made it fewer writes).
    expect(boundaries).toBeGreaterThan(6);

    for (let at = 0; at <= boundaries; at++) {
      const { cli, dir } = suite.key(mode);
      const baseline = await suite.server.acceptedDigests();
      const added = await cli.run(['add', KEY]);
      expect(added.code, describeRun(added)).toBe(0);
      const fault = at % 2 === 0 ? 'kill-before' : 'kill-after';
      const crashed = await cli.run(['rotate', KEY], { env: { PROVKEY_FAULT_AT: `${at}:${fault}` } });
      if (at === boundaries) {
        // One past the last boundary: nothing to kill, the rotation simply completes.
        expect(crashed.code, describeRun(crashed)).toBe(0);
        continue;
      }
      expectKilled(crashed);
      await learnStoredSecrets(cli, dir);
      const { result, data } = await cli.json<ResultsJson>(['rotate', KEY]);
      expect(result.code, `after ${fault} at boundary ${at} (${plan.calls[at]!.boundary}.${plan.calls[at]!.operation}): ${describeRun(result)}`).toBe(0);
      expect(data.results[0]?.outcome).not.toBe('lockout');
      await expectConverged(cli, suite.server, baseline);
    }
  });
});
