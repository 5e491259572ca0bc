/**
 * Schedules across processes: three nodes (child processes) run one schedule over real etcd (config) and
 * NATS JetStream (queue); nodes are SIGKILLed just before a slot. Every slot from the first to the last
 * must be published exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../../src/testing/harness.js';
import { startChild, type Child } from '../support/child-process.js';
import { startEtcdNats, stopEtcdNats, type EtcdNats } from './etcd-nats.js';

function startNode(name: string, env: Record<string, string>): Child {
  return startChild(new URL('./schedule-node.ts', import.meta.url), { env: { ...process.env, ...env, NODE_NAME: name }, inheritStderr: true });
}

/** Waits until `ms` before the next whole second (the next slot of an every-second schedule). */
async function justBeforeSlot(ms: number): Promise<void> {
  const next = Math.ceil((Date.now() + ms + 5) / 1_000) * 1_000;
  await sleep(next - ms - Date.now());
}

describe('a schedule across three processes', () => {
  let cluster: EtcdNats | undefined;
  const nodes: Child[] = [];

  beforeAll(async () => {
    cluster = await startEtcdNats('schedules');
  }, 180_000);

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    await stopEtcdNats(cluster);
  }, 60_000);

  it('publishes every slot exactly once while nodes are SIGKILLed just before slots', async (context) => {
    const operator = cluster?.operator;
    if (operator === undefined) return context.skip(cluster?.skipReason ?? 'no services');
    const queue = operator.queue;
    for (const name of ['a', 'b', 'c']) nodes.push(startNode(name, cluster?.env ?? {}));
    await Promise.all(nodes.map((n) => n.ready));
    const slots = async (): Promise<number[]> => (await queue.browse('ticks')).map((m) => Number(/-(\d+)$/.exec(m.id ?? '')?.[1]));
    const waitForSlots = async (count: number): Promise<void> => {
      const deadline = Date.now() + 20_000;
      while ((await slots()).length < count) {
        if (Date.now() > deadline) throw new Error(`only ${(await slots()).length} of ${count} slots after 20 s`);
        await sleep(100);
      }
    };
    await waitForSlots(2);
    // Kill two of the three nodes, each 40 ms before a slot; the last one carries on alone.
    for (const victim of [nodes[0], nodes[1]] as Child[]) {
      await justBeforeSlot(40);
      await victim.kill();
      await waitForSlots((await slots()).length + 2);
    }
    const got = await slots();
    expect(new Set(got).size, `no slot twice: ${got.join(', ')}`).toBe(got.length);
    for (let i = 1; i < got.length; i++) expect((got[i] as number) - (got[i - 1] as number), `no slot skipped: ${got.join(', ')}`).toBe(1_000);
  }, 90_000);
});
