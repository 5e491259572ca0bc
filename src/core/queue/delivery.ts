/**
 * One delivery as the port hands it out: the driver's delivery with the port's headers, decoding and
 * settle-once rules.
 *
 * @module
 */
import { StowageError } from '../../ports/errors.js';
import type { Delivery, DriverDelivery, Headers, NakOptions } from '../../ports/queue.js';
import { quote } from '../../driver/validate.js';
import { invalid } from '../../driver/errors.js';
import { HEADER_KEY, HEADER_ORIGINAL_ID, HEADER_VALUE_BAD, userHeaders } from './headers.js';
import { intOption, MAX_TIMER_MS } from './options.js';
import { attemptOf, type Attempt, type Settler } from './settlement.js';
import type { KeyMarks } from './key-turns.js';

const ignore = (): undefined => undefined;
const TEXT = new TextDecoder();

/** One delivery as the port hands it out: settles at most once, dead-letters on the last attempt. */
export class CoreDelivery implements Delivery {
  readonly #settler: Settler;
  readonly #maxDeliver: number;
  readonly #d: DriverDelivery;
  readonly #delayed: boolean;
  /** Moves the key's done-mark when the delivery is settled for good (`consume`, `processBatch` on a shared group). */
  readonly #marks: KeyMarks | undefined;
  #settled: Attempt | undefined;
  #settledAs: 'ack' | 'nak' | 'dead' | undefined;
  readonly topic: string;
  readonly group: string;
  readonly seq: number;
  readonly id: string | undefined;
  readonly key: string | undefined;
  readonly headers: Headers;
  /** The headers as stored, reserved ones included (the handler form reads the trace context from them). */
  readonly storedHeaders: Headers;
  readonly payload: Uint8Array;
  readonly deliveryCount: number;
  readonly publishedAt: Date;

  /**
   * `deliveryCount` is the driver's count less the deliveries that came before a delayed message's time;
   * `delayed` says whether the message was delayed (its early deliveries are forgotten once it is settled);
   * `marks`, when given, keeps the key's turn in the group as the message is acked or dead-lettered.
   */
  constructor(
    settler: Settler,
    topic: string,
    group: string,
    maxDeliver: number,
    d: DriverDelivery,
    deliveryCount: number,
    delayed: boolean,
    marks?: KeyMarks,
  ) {
    this.#settler = settler;
    this.#delayed = delayed;
    this.#marks = marks;
    this.#maxDeliver = maxDeliver;
    this.#d = d;
    this.topic = topic;
    this.group = group;
    this.seq = d.seq;
    this.id = d.headers[HEADER_ORIGINAL_ID] ?? d.id;
    this.headers = userHeaders(d.headers);
    this.storedHeaders = d.headers;
    this.payload = d.payload;
    this.key = d.headers[HEADER_KEY];
    this.deliveryCount = deliveryCount;
    this.publishedAt = d.publishedAt;
  }

  text(): string {
    return TEXT.decode(this.payload);
  }

  json<T = unknown>(): T {
    try {
      return JSON.parse(this.text()) as T;
    } catch (err) {
      throw new StowageError('INVALID_ARGUMENT', `message ${this.seq} of topic ${quote(this.topic)} is not JSON`, { cause: err });
    }
  }

  ack(): Promise<void> {
    const settled = this.#settled;
    // Settles at most once; a failed settlement may be tried again.
    if (settled !== undefined && !settled.failed) return settled.promise.then(ignore, ignore);
    const marks = this.#marks;
    // The mark moves before the ack, as after a handler: a crash in between brings the message back, and
    // a processor of the group then acks it as handled.
    const attempt =
      marks === undefined || !marks.wants(this) ? this.#settler.ack(this.#d) : attemptOf(marks.pass([this]).then(() => this.#settler.ack(this.#d).promise));
    this.#settled = attempt;
    this.#settledAs = 'ack';
    this.#forgetEarly();
    return attempt.promise;
  }

  /** Whether a nak now would move the message to the dead-letter topic (its last allowed attempt). */
  get lastAttempt(): boolean {
    return this.deliveryCount >= this.#maxDeliver;
  }

  nak(options?: NakOptions): Promise<void> {
    const delayMs = intOption(options?.delayMs, 'delayMs', 0, 0, MAX_TIMER_MS);
    if (this.lastAttempt) {
      this.#forgetEarly();
      return this.#once('dead', () => this.#passed(this.#settler.deadLetter(this.#d, this.topic, this.group, 'max-deliver', options?.error)));
    }
    return this.#once('nak', () => this.#settler.settle('nak', () => this.#d.nak(delayMs)));
  }

  term(reason = 'term'): Promise<void> {
    if (typeof reason !== 'string' || reason.length === 0 || HEADER_VALUE_BAD.test(reason) || reason.length > 1024) {
      return Promise.reject(invalid('term reason must be 1 to 1024 characters without control characters'));
    }
    this.#forgetEarly();
    return this.#once('dead', () => this.#passed(this.#settler.deadLetter(this.#d, this.topic, this.group, reason)));
  }

  /**
   * Once `deadLettered` resolves, moves the key's mark past the message (after, not before: a failed move
   * to the dead-letter topic leaves the message with its group, to be handled again).
   */
  async #passed(deadLettered: Promise<void>): Promise<void> {
    await deadLettered;
    const marks = this.#marks;
    if (marks !== undefined && marks.wants(this)) await marks.pass([this]);
  }

  /**
   * Gives the delivery back to the group at once, unprocessed (a processor stopping with deliveries it
   * never started). Never dead-letters: the attempt was not made.
   */
  release(): Promise<void> {
    return this.#once('nak', () => this.#settler.settle('nak', () => this.#d.nak(0)));
  }

  /** Whether `ack`, `nak` or `term` was called (and did not fail). */
  get settled(): boolean {
    return this.#settled !== undefined && !this.#settled.failed;
  }

  /**
   * How the delivery was last settled: acked, given back for another attempt (`nak`, `release`), or moved to
   * the dead-letter topic (`term`, a nak on the last attempt); undefined when it was not.
   */
  get settledAs(): 'ack' | 'nak' | 'dead' | undefined {
    return this.#settledAs;
  }

  #forgetEarly(): void {
    if (this.#delayed) this.#settler.forgetEarly(this.topic, this.group, this.seq);
  }

  async touch(): Promise<void> {
    if (this.#settled !== undefined && !this.#settled.failed) return;
    await this.#settler.settle('touch', () => this.#d.touch());
  }

  /** Settles at most once; a failed settlement may be tried again. */
  #once(as: 'nak' | 'dead', fn: () => Promise<void>): Promise<void> {
    const settled = this.#settled;
    if (settled !== undefined && !settled.failed) return settled.promise.then(ignore, ignore);
    const attempt = attemptOf(fn());
    this.#settled = attempt;
    this.#settledAs = as;
    return attempt.promise;
  }
}
