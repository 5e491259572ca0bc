/**
 * The group-commit loop the disk queue's topic log and entry journal share: appends of one turn share a
 * round, appends made during a round share the next one, and under an interval policy a timer syncs and a
 * failed sync stops the loop.
 */
import { describe, expect, it } from 'vitest';
import { GroupCommit } from '../../src/driver/group-commit.js';
import { eventually } from '../../src/testing/harness.js';

/** A fake file: appends go to `pending`, each round moves them to `rounds` (optionally slowly). */
function fakeFile(options: { roundMs?: number; syncEveryMs?: number; sync?: () => Promise<void>; gather?: 'turn' | 'microtask' } = {}) {
  const pending: number[] = [];
  const rounds: number[][] = [];
  let syncs = 0;
  const commit = new GroupCommit({
    writeRound: async () => {
      if (pending.length === 0) return false;
      rounds.push(pending.splice(0));
      if (options.roundMs !== undefined) await new Promise((resolve) => setTimeout(resolve, options.roundMs));
      if (options.syncEveryMs !== undefined) commit.unsynced();
      return true;
    },
    sync: async () => {
      syncs++;
      await options.sync?.();
    },
    ...(options.gather ? { gather: options.gather } : {}),
    ...(options.syncEveryMs !== undefined ? { syncEveryMs: options.syncEveryMs } : {}),
  });
  const append = (n: number): void => {
    pending.push(n);
    commit.kick();
  };
  return { commit, append, rounds, syncs: () => syncs };
}

describe('GroupCommit', () => {
  it('appends of one turn share one round', async () => {
    const f = fakeFile();
    for (let i = 0; i < 100; i++) f.append(i);
    await f.commit.idle();
    expect(f.rounds).toEqual([Array.from({ length: 100 }, (_, i) => i)]);
  });

  it('waits for appends still on their way through promise hops before the round (gather: turn)', async () => {
    const f = fakeFile();
    f.append(1);
    void Promise.resolve()
      .then(() => undefined)
      .then(() => f.append(2));
    await f.commit.idle();
    expect(f.rounds).toEqual([[1, 2]]);
  });

  it('appends made while a round runs share the next round, and idle() waits for it', async () => {
    const f = fakeFile({ roundMs: 30 });
    f.append(1);
    await new Promise((resolve) => setTimeout(resolve, 10));
    f.append(2);
    f.append(3);
    await f.commit.idle();
    expect(f.rounds).toEqual([[1], [2, 3]]);
  });

  it('with gather: microtask, a round starts before the event loop turns', async () => {
    const f = fakeFile({ gather: 'microtask' });
    f.append(1);
    await new Promise<void>((resolve) => queueMicrotask(resolve));
    await Promise.resolve();
    expect(f.rounds).toEqual([[1]]);
    await f.commit.idle();
  });

  it('syncs what rounds left unsynced on its timer, and stop() ends the timer', async () => {
    const f = fakeFile({ syncEveryMs: 20 });
    f.append(1);
    await f.commit.idle();
    await eventually(() => f.syncs() === 1, 'the timer syncs the round', 5_000);
    // Nothing new is unsynced: the timer's later ticks do nothing.
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(f.syncs()).toBe(1);
    f.append(2);
    await f.commit.stop();
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(f.syncs()).toBe(1);
    await f.commit.syncUnsynced();
    expect(f.syncs()).toBe(2);
    await f.commit.syncUnsynced();
    expect(f.syncs()).toBe(2);
  });

  it('a failed background sync is kept as failure and no round runs after it', async () => {
    const failing = Object.assign(new Error('EIO'), { code: 'EIO' });
    const f = fakeFile({ syncEveryMs: 20, sync: () => Promise.reject(failing) });
    f.append(1);
    await f.commit.idle();
    await eventually(() => f.commit.failure !== undefined, 'the background sync fails', 5_000);
    expect(f.commit.failure).toBe(failing);
    f.append(2);
    await f.commit.idle();
    expect(f.rounds).toEqual([[1]]);
    await f.commit.stop();
  });
});
