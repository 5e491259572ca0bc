/**
 * Queue gauges for OpenTelemetry: the state of each topic and group, read with `stats` when the
 * application's MeterProvider collects (a Prometheus scrape, a periodic export), never in between.
 *
 * @module
 */
import { metrics, type MeterProvider, type ObservableGauge } from '@opentelemetry/api';
import type { Queue } from '../../ports/queue.js';
import { StowageError } from '../../ports/errors.js';

/** Options of {@link observeQueue}. */
export interface ObserveQueueOptions {
  /**
   * The topics to report. Default: every topic the queue lists (`topics()`) at each collection. A fixed
   * list bounds the cost of a collection on a queue with very many topics.
   */
  topics?: readonly string[];
  /** The MeterProvider to report to. Default: the global one (`metrics.getMeterProvider()`). */
  meterProvider?: MeterProvider;
}

/** What {@link observeQueue} returns: `close()` stops reporting. */
export interface QueueObservation {
  /** Stops reporting (the gauges then report nothing). Idempotent. */
  close(): void;
}

/**
 * Reports, per topic and group, at each collection:
 * - `stowage.queue.messages` (topic) — messages stored;
 * - `stowage.queue.dead_letters` (topic) — messages in the dead-letter topic;
 * - `stowage.queue.backlog` (topic, group) — messages not yet delivered to the group;
 * - `stowage.queue.pending` (topic, group) — delivered and not yet settled;
 * - `stowage.queue.redelivered` (topic, group) — redeliveries since the group was created;
 * - `stowage.queue.consumer_lag` (topic, group) — the newest sequence minus the group's ack floor: how far
 *   the group's acknowledged prefix is behind the topic.
 *
 * A topic whose stats fail is left out of that collection (the failure is the queue's call metrics' to
 * count). Handler durations are recorded by the handler form itself (`stowage.queue.handler.duration`).
 *
 * @example
 * ```ts
 * const observation = observeQueue(stowage.queue);
 * // … on shutdown
 * observation.close();
 * ```
 */
export function observeQueue(queue: Queue, options: ObserveQueueOptions = {}): QueueObservation {
  const fixed = options.topics === undefined ? undefined : [...options.topics];
  if (fixed !== undefined && fixed.some((t) => typeof t !== 'string' || t.length === 0)) {
    throw new StowageError('INVALID_ARGUMENT', 'observeQueue: topics must be non-empty strings');
  }
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter('stowage');
  const gauge = (name: string, description: string): ObservableGauge => meter.createObservableGauge(name, { description, unit: '{message}' });
  const messages = gauge('stowage.queue.messages', 'Messages stored in a topic');
  const deadLetters = gauge('stowage.queue.dead_letters', 'Messages in a topic’s dead-letter topic');
  const backlog = gauge('stowage.queue.backlog', 'Messages not yet delivered to a consumer group');
  const pending = gauge('stowage.queue.pending', 'Messages delivered to a consumer group and not yet settled');
  const redelivered = gauge('stowage.queue.redelivered', 'Redeliveries to a consumer group');
  const lag = gauge('stowage.queue.consumer_lag', 'Newest sequence of a topic minus the ack floor of a consumer group');
  const all = [messages, deadLetters, backlog, pending, redelivered, lag];
  const attributes = { 'stowage.backend': queue.backend };

  const callback = async (result: { observe(gauge: ObservableGauge, value: number, attributes: Record<string, string>): void }): Promise<void> => {
    if (queue.closed) return;
    const topics = fixed ?? (await queue.topics());
    await Promise.all(
      topics.map(async (topic) => {
        let stats;
        try {
          stats = await queue.stats(topic);
        } catch {
          return;
        }
        const byTopic = { ...attributes, 'stowage.topic': topic };
        result.observe(messages, stats.messages, byTopic);
        result.observe(deadLetters, stats.deadLetters, byTopic);
        for (const group of stats.groups) {
          const byGroup = { ...byTopic, 'stowage.group': group.group };
          result.observe(backlog, group.backlog, byGroup);
          result.observe(pending, group.pending, byGroup);
          result.observe(redelivered, group.redelivered, byGroup);
          result.observe(lag, Math.max(0, stats.lastSeq - group.ackFloor), byGroup);
        }
      }),
    );
  };
  meter.addBatchObservableCallback(callback, all);
  let open = true;
  return {
    close(): void {
      if (!open) return;
      open = false;
      meter.removeBatchObservableCallback(callback, all);
    },
  };
}
