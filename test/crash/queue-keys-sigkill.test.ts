/**
 * Ordering keys and rate limits across processes: three consumer processes (children) share one group over
 * real etcd (config) and NATS JetStream (queue). One of them is SIGKILLed while it runs a message of a key.
 * Every key must run one message at a time across the three, in publish order, each message at least once,
 * and the key held by the killed process must move on to the others; a group rate limit must hold for the
 * three together.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../../src/testing/harness.js';
import { startChild, type Child } from '../support/child-process.js';
import { startEtcdNats, stopEtcdNats, type EtcdNats } from './etcd-nats.js';

/** A line a consumer printed: what (`start`, `end`, `rate`), the message, when (ms since the epoch). */
interface Event {
  readonly node: string;
  readonly kind: string;
  readonly text: string;
  readonly at: number;
}

interface Node {
  readonly name: string;
  readonly child: Child;
}

const KEYS = 8;
/**
 * Messages per key. Small enough that the two survivors (prefetch 36 each) can hold every message left:
 * the killed process's messages come back to a consumer with room (see "Ordering keys" in the README).
 */
const PER_KEY = 10;

describe('ordering keys and rate limits across three processes', () => {
  let cluster: EtcdNats | undefined;
  const nodes: Node[] = [];
  const events: Event[] = [];

  function startNode(name: string, mode: 'keys' | 'rate'): Node {
    const child = startChild(new URL('./queue-keys-node.ts', import.meta.url), {
      env: { ...process.env, ...cluster?.env, MODE: mode },
      inheritStderr: true,
      onLine: (line) => {
        const [kind, text, at] = line.split(' ');
        if (at !== undefined) events.push({ node: name, kind: kind as string, text: text as string, at: Number(at) });
      },
    });
    const node = { name, child };
    nodes.push(node);
    return node;
  }

  beforeAll(async () => {
    cluster = await startEtcdNats('keys');
  }, 180_000);

  afterEach(async () => {
    await Promise.all(nodes.map((n) => n.child.kill()));
    nodes.length = 0;
  });

  afterAll(async () => {
    await stopEtcdNats(cluster);
  }, 60_000);

  it('runs one message of a key at a time, in publish order, and moves a killed holder\'s key on', async (context) => {
    const operator = cluster?.operator;
    if (operator === undefined) return context.skip(cluster?.skipReason ?? 'no services');
    const queue = operator.queue;
    for (let i = 0; i < PER_KEY; i++) {
      for (let k = 0; k < KEYS; k++) await queue.publish('jobs', `k${k}:${i}`, { key: `k${k}` });
    }
    for (const name of ['a', 'b', 'c']) startNode(name, 'keys');
    await Promise.all(nodes.map((n) => n.child.ready));

    // Kill a node while it runs a message (a start without its end), once every node has done some work.
    const running = (node: string): Event | undefined => {
      const mine = events.filter((e) => e.node === node);
      const ended = new Set(mine.filter((e) => e.kind === 'end').map((e) => e.text));
      return mine.find((e) => e.kind === 'start' && !ended.has(e.text));
    };
    let victim: Node | undefined;
    let held: Event | undefined;
    const deadline = Date.now() + 30_000;
    while (victim === undefined) {
      if (Date.now() > deadline) throw new Error(`no node ran a message within 30 s (${events.length} events)`);
      if (events.filter((e) => e.kind === 'end').length >= 16) {
        for (const node of nodes) {
          held = running(node.name);
          if (held !== undefined) {
            node.child.process.kill('SIGKILL');
            victim = node;
            break;
          }
        }
      }
      if (victim === undefined) await sleep(2);
    }
    await victim.child.exited;
    const killedAt = Date.now();
    // Its end line may have been in the pipe, unread, when it was killed (a CI run saw the "held" message end
    // and never run again): what it held is what it started and never ended, read once all its output is in.
    held = running(victim.name);
    const total = KEYS * PER_KEY;
    const endedAll = (): boolean => new Set(events.filter((e) => e.kind === 'end').map((e) => e.text)).size === total;
    const until = Date.now() + 60_000;
    while (!endedAll()) {
      if (Date.now() > until) throw new Error(`only ${new Set(events.filter((e) => e.kind === 'end').map((e) => e.text)).size} of ${total} messages handled 60 s after the kill`);
      await sleep(50);
    }

    for (let k = 0; k < KEYS; k++) {
      const key = `k${k}`;
      const starts = events.filter((e) => e.kind === 'start' && e.text.startsWith(`${key}:`)).sort((a, b) => a.at - b.at);
      // When each run ended: its end line, or the kill for the run the killed node never finished.
      const endOf = (s: Event): number =>
        events.find((e) => e.kind === 'end' && e.node === s.node && e.text === s.text && e.at >= s.at)?.at ?? (s.node === victim?.name ? killedAt : Infinity);
      for (let j = 1; j < starts.length; j++) {
        const before = starts[j - 1] as Event;
        const now = starts[j] as Event;
        expect(now.at, `${now.text} on ${now.node} started while ${before.text} ran on ${before.node}`).toBeGreaterThanOrEqual(endOf(before));
      }
      const order = starts.map((s) => Number(s.text.split(':')[1])).filter((n, j, all) => j === 0 || n !== all[j - 1]);
      const story = `${starts.map((s) => `${s.text}@${s.node}+${s.at - killedAt}`).join(' ')}; ${victim?.name} killed holding ${held?.text}`;
      expect(order, `${key} in publish order, nothing skipped: ${story}`).toEqual(Array.from({ length: PER_KEY }, (_, i) => i));
    }
    // The message the killed node held ran again elsewhere, within ackWait (2 s) + the lease's TTL (2 s) and some
    // slack. (It may have ended every message it started in the moment between the look and the kill: then
    // there is none, and the order checks above are what this run proves.)
    if (held === undefined) console.info(`${victim.name} ended every message it started before the kill landed`);
    else {
      const rerun = events.find((e) => e.kind === 'start' && e.text === held?.text && e.node !== victim?.name);
      expect(rerun, `${held.text} ran again after the kill`).toBeDefined();
      expect((rerun as Event).at - killedAt, 'the killed holder\'s key moved on soon').toBeLessThan(10_000);
    }
  }, 150_000);

  it('keeps a rate limit for the whole group across the three processes', async (context) => {
    const operator = cluster?.operator;
    if (operator === undefined) return context.skip(cluster?.skipReason ?? 'no services');
    const queue = operator.queue;
    const count = 45;
    const max = 10;
    const perMs = 1_000;
    await queue.publishMany('limited', Array.from({ length: count }, (_, i) => ({ payload: `m${i}` })));
    for (const name of ['d', 'e', 'f']) startNode(name, 'rate');
    await Promise.all(nodes.map((n) => n.child.ready));
    const rates = (): Event[] => events.filter((e) => e.kind === 'rate');
    const until = Date.now() + 30_000;
    while (new Set(rates().map((e) => e.text)).size < count) {
      if (Date.now() > until) throw new Error(`only ${rates().length} of ${count} messages handled in 30 s`);
      await sleep(50);
    }
    const starts = rates().sort((a, b) => a.at - b.at);
    expect(new Set(starts.map((e) => e.node)).size, 'the three processes took part').toBeGreaterThan(1);
    for (let i = max; i < starts.length; i++) {
      const gap = (starts[i] as Event).at - (starts[i - max] as Event).at;
      // Tolerance: 50 ms, for the moment between the limiter's start and the handler's line, as in the
      // in-process contract case.
      expect(gap, `starts ${i - max} and ${i} are ${gap} ms apart`).toBeGreaterThanOrEqual(perMs - 50);
    }
  }, 120_000);
});
