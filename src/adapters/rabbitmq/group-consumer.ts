/**
 * The AMQP consumer of a group's queue. `rabbitmq-client`'s `Consumer` sends one basic.ack per message; this one
 * sends one for every run of settled messages that reached it in the same turn of the event loop (`multiple`),
 * so the client encodes, and RabbitMQ's quorum queue logs, one settlement for many messages.
 */
import { ConsumerStatus, type AsyncMessage, type Channel, type Connection } from 'rabbitmq-client';
import { pause, RETRY_MAX_MS, RETRY_MIN_MS } from '../../driver/sleep.js';

/** What settles a delivery: its handler resolves with ACK or REQUEUE (DROP is REQUEUE's opposite: not requeued). */
export type GroupHandler = (m: AsyncMessage) => Promise<ConsumerStatus>;

/**
 * Consumes one queue with manual acks, subscribing again (with backoff) when its channel closes or RabbitMQ
 * cancels it, until {@link GroupConsumer.close}.
 *
 * Each message goes to the handler as it arrives (the channel's prefetch bounds how many are out at once);
 * what the handler resolves with settles the message on the channel it came on. A REQUEUE or DROP (or a handler
 * that rejects, which requeues) is sent at once; an ACK is kept until the end of the turn, then sent with the
 * others: one basic.ack with `multiple` for the longest run of settled delivery tags from the oldest unsettled
 * one, and one each for the acks past a message still in a handler, so that a slow message never holds the acks
 * of later ones (nor their prefetch slots). A message whose channel closed before it was settled cannot be
 * settled any more: RabbitMQ has returned it to the queue already.
 */
export class GroupConsumer {
  readonly #conn: Connection;
  readonly #queue: string;
  readonly #prefetch: number;
  readonly #handler: GroupHandler;
  readonly #warn: (what: string, err: unknown) => void;
  readonly #stop = new AbortController();
  #channel: Channel | undefined;
  #consumerTag: string | undefined;
  /**
   * The current channel's delivery tags not yet acked, in the order they came (tags grow on a channel): `true`
   * once the handler resolved with ACK and the ack waits for the end of the turn.
   */
  readonly #open = new Map<number, boolean>();
  /** How many of {@link GroupConsumer.#open} are acked and wait for the end of the turn. */
  #acked = 0;
  #flushing = false;
  /** Handlers still running, waited for by {@link GroupConsumer.close} before the channel closes. */
  #running = 0;
  #idle: (() => void) | undefined;
  /** Whether {@link GroupConsumer.#subscribe} is under way. */
  #attempting = false;
  /** The latest subscribe, waited for by {@link GroupConsumer.close}. */
  #subscribing: Promise<void>;
  #closing: Promise<void> | undefined;

  /**
   * @param warn - told of what went wrong in the background (a failed subscribe, a channel error).
   */
  constructor(conn: Connection, queue: string, prefetch: number, handler: GroupHandler, warn: (what: string, err: unknown) => void) {
    this.#conn = conn;
    this.#queue = queue;
    this.#prefetch = prefetch;
    this.#handler = handler;
    this.#warn = warn;
    this.#subscribing = this.#subscribe();
  }

  /** Opens a channel and subscribes, retrying until it works or the consumer closes. */
  async #subscribe(): Promise<void> {
    this.#attempting = true;
    try {
      await this.#attempts(this.#stop.signal);
    } finally {
      this.#attempting = false;
    }
  }

  async #attempts(signal: AbortSignal): Promise<void> {
    let wait = RETRY_MIN_MS;
    while (!signal.aborted) {
      let ch: Channel | undefined;
      try {
        ch = await this.#conn.acquire({ emitErrorsFromChannel: true });
        if (signal.aborted) {
          await ch.close();
          return;
        }
        const channel = ch;
        channel.on('error', (err: unknown) => this.#warn(`consumer of ${this.#queue}`, err));
        channel.once('close', () => this.#lost(channel));
        channel.once('basic.cancel', () => this.#lost(channel));
        // Passive: a queue deleted meanwhile fails the subscribe (retried) instead of being made anew, empty.
        await channel.queueDeclare({ queue: this.#queue, passive: true });
        await channel.basicQos({ prefetchCount: this.#prefetch });
        this.#channel = channel;
        this.#forget();
        const { consumerTag } = await channel.basicConsume({ queue: this.#queue }, (m) => this.#arrive(channel, m));
        // Lost in the same read as the consume's answer: #lost left the retry to this loop.
        if (this.#channel !== channel) throw new Error('the channel closed as the consumer was made');
        this.#consumerTag = consumerTag;
        return;
      } catch (err) {
        if (this.#channel === ch) this.#channel = undefined;
        if (ch?.active) ch.close().catch(() => undefined);
        if (signal.aborted) return;
        this.#warn(`consumer of ${this.#queue} (subscribing again in ${wait} ms)`, err);
        await pause(wait, signal).catch(() => undefined);
        wait = Math.min(wait * 2, RETRY_MAX_MS);
      }
    }
  }

  /** The channel closed or RabbitMQ cancelled the consumer (its queue was deleted): subscribe again. */
  #lost(channel: Channel): void {
    if (this.#channel !== channel) return;
    this.#channel = undefined;
    this.#consumerTag = undefined;
    this.#forget();
    if (channel.active) channel.close().catch(() => undefined);
    // While a subscribe is under way, its own loop tries again.
    if (!this.#stop.signal.aborted && !this.#attempting) this.#subscribing = this.#subscribe();
  }

  /** A channel's delivery tags mean nothing on the next. */
  #forget(): void {
    this.#open.clear();
    this.#acked = 0;
  }

  #arrive(channel: Channel, m: AsyncMessage): void {
    const tag = m.deliveryTag;
    this.#open.set(tag, false);
    this.#running++;
    this.#handler(m).then(
      (status) => this.#ran(channel, tag, status),
      (err: unknown) => {
        this.#warn(`handler of ${this.#queue}`, err);
        this.#ran(channel, tag, ConsumerStatus.REQUEUE);
      },
    );
  }

  #ran(channel: Channel, tag: number, status: ConsumerStatus): void {
    this.#settle(channel, tag, status);
    if (--this.#running === 0 && this.#idle !== undefined) this.#idle();
  }

  #settle(channel: Channel, tag: number, status: ConsumerStatus): void {
    // Its channel is gone: RabbitMQ returned the message to the queue when it closed.
    if (this.#channel !== channel || !this.#open.has(tag)) return;
    if (status === ConsumerStatus.ACK) {
      this.#open.set(tag, true);
      this.#acked++;
      if (!this.#flushing) {
        this.#flushing = true;
        setImmediate(this.#flush);
      }
      return;
    }
    this.#open.delete(tag);
    this.#send(channel, () => channel.basicNack({ deliveryTag: tag, requeue: status === ConsumerStatus.REQUEUE }));
  }

  /** Sends the acks gathered in this turn: see the class's description. */
  readonly #flush = (): void => {
    this.#flushing = false;
    const channel = this.#channel;
    if (channel === undefined) return;
    // The scan stops once every ack is placed: with messages settled in order, it reads only the acked ones.
    let floor = 0;
    let gap = false;
    const singles: number[] = [];
    for (const [tag, acked] of this.#open) {
      if (this.#acked === 0) break;
      if (!acked) {
        gap = true;
        continue;
      }
      this.#acked--;
      this.#open.delete(tag);
      if (gap) singles.push(tag);
      else floor = tag;
    }
    if (floor !== 0) this.#send(channel, () => channel.basicAck({ deliveryTag: floor, multiple: true }));
    for (const tag of singles) this.#send(channel, () => channel.basicAck({ deliveryTag: tag }));
  };

  /** Sends a settlement; one that fails (the connection dropped) is reported, and RabbitMQ will redeliver. */
  #send(channel: Channel, frame: () => void): void {
    try {
      frame();
    } catch (err) {
      this.#warn(`consumer of ${this.#queue}: a settlement was not sent`, err);
      this.#lost(channel);
    }
  }

  /**
   * Stops: cancels the subscription (RabbitMQ sends nothing new), waits for the handlers running to settle,
   * sends their acks, then closes the channel, which returns whatever is left unsettled to the queue.
   */
  close(): Promise<void> {
    return (this.#closing ??= this.#close());
  }

  async #close(): Promise<void> {
    this.#stop.abort();
    // A subscribe that fails meanwhile starts no other, so the latest is the last.
    await this.#subscribing;
    const channel = this.#channel;
    const tag = this.#consumerTag;
    this.#consumerTag = undefined;
    if (channel?.active && tag !== undefined) await channel.basicCancel({ consumerTag: tag }).catch((err: unknown) => this.#warn(`consumer of ${this.#queue}`, err));
    // Messages may arrive until the cancel is confirmed: they too are counted in #running.
    if (this.#running > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
    this.#flush();
    this.#channel = undefined;
    if (channel?.active) await channel.close().catch((err: unknown) => this.#warn(`consumer of ${this.#queue}`, err));
  }
}
