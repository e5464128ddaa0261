// Two cron hosts rotating the same key at once: the claim (an exclusive compare-and-set on
// the file store) lets exactly one win; the other skips with exit 0.

import { describe, expect, it } from 'vitest';
import { describeRun } from '../harness/cli.ts';
import { crashSuite, expectConverged, KEY, MODES, type ResultsJson } from './fixture.ts';

describe('two rotations of the same key at once', () => {
  // A slow fleet: each rotation waits ~2 s for its token to propagate, so the two runs
  // overlap even when one of them starts late on a busy machine.
  const suite = crashSuite({ propagationMs: 2000 });

  it.each(MODES)('$name: exactly one rotates, the other skips with exit 0', async (mode) => {
    const fixture = suite.key({ ...mode, propagationTimeout: '10s' });
    const cli = fixture.cli;
    const baseline = await suite.server.acceptedDigests();
    const added = await cli.run(['add', KEY]);
    expect(added.code, describeRun(added)).toBe(0);
    const old = await cli.reveal(KEY, `${KEY} before`);

    const runs = await Promise.all([cli.json<ResultsJson>(['rotate', KEY]), cli.json<ResultsJson>(['rotate', KEY])]);
    for (const { result } of runs) expect(result.code, describeRun(result)).toBe(0);
    const outcomes = runs.map(({ data }) => data.results[0]!.outcome).sort();
    expect(outcomes).toEqual(['rotated', 'skipped']);
    const skipped = runs.map(({ data }) => data.results[0]!).find((r) => r.outcome === 'skipped')!;
    expect(skipped.ok).toBe(true);
    // Lost the claim, or found the file store locked by the winner past the lock timeout: contention, not failure.
    expect(skipped.message).toMatch(/in progress|another run holds this key/);

    const { history } = await expectConverged(cli, suite.server, baseline, mode.overlap ? { accepted: [old] } : { rejected: [old] });
    expect(history.versions).toHaveLength(2);
    expect(history.events.filter((e) => e.event === 'rotate.finished')).toHaveLength(1);
  });
});
