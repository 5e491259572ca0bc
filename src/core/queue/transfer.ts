/**
 * The copy paths `stowage migrate` needs beyond the port (dead letters as stored, messages restored with
 * their reserved headers), and the paged read they share with `browse` and `deadLetters`.
 *
 * @module
 */
import { StowageError } from '../../ports/errors.js';
import type { CallOptions } from '../../ports/common.js';
import type { PublishResult, QueueDriver, StoredMessage } from '../../ports/queue.js';
import { quote, validateFlatKey, validateName, validatePositiveInt } from '../../driver/validate.js';
import { invalid } from '../../driver/errors.js';
import type { PortRuntime } from '../runtime.js';
import { DLQ_SUFFIX, validateHeaders } from './headers.js';

/** How many messages one driver read asks for. */
export const READ_PAGE = 256;

/** What `queueTransfer` gives: the copy paths `stowage migrate` needs beyond the port. */
export interface QueueTransfer {
  /** A topic's dead letters as stored (reserved headers and the stored id kept), from `fromSeq`. */
  readDeadLetters(topic: string, fromSeq: number, limit: number, options?: CallOptions): Promise<StoredMessage[]>;
  /**
   * Stores a copied message as given — reserved headers and id included — in `topic`, or in its
   * dead-letter topic with `deadLetter: true`. Dedupe by id applies as to any publish.
   */
  restore(
    topic: string,
    message: Pick<StoredMessage, 'payload' | 'headers' | 'id'>,
    options?: CallOptions & { deadLetter?: boolean },
  ): Promise<PublishResult>;
}

/**
 * For Stowage's own copy tools (`stowage migrate`), not applications: reads a topic's dead-letter topic
 * as stored (reserved headers kept), and stores a copied message with its reserved headers and stored id
 * in a topic or in its dead-letter topic. Reached through `queueTransfer`.
 */
export function createTransfer(driver: QueueDriver, runtime: PortRuntime, maxPayloadBytes: number): QueueTransfer {
  return {
    readDeadLetters: async (topic, fromSeq, limit, options) => {
      runtime.assertOpen('readDeadLetters');
      validateName(topic, 'topic');
      validatePositiveInt(fromSeq, 'fromSeq');
      validatePositiveInt(limit, 'limit', { max: 100_000 });
      return runtime.run('readDeadLetters', options, (signal) => readFrom(driver, topic + DLQ_SUFFIX, fromSeq, limit, signal));
    },
    restore: async (topic, message, options) => {
      runtime.assertOpen('restore');
      validateName(topic, 'topic');
      if (!(message.payload instanceof Uint8Array)) throw invalid('payload must be a Uint8Array');
      if (message.payload.byteLength > maxPayloadBytes) {
        throw new StowageError('RESOURCE_EXHAUSTED', `payload for topic ${quote(topic)} is ${message.payload.byteLength} bytes; the limit is ${maxPayloadBytes}`);
      }
      // Reserved headers are what a copy must carry (dead-letter group, replay group, original id).
      const stored = validateHeaders(message.headers, { allowReserved: true });
      const id = message.id === undefined ? undefined : validateFlatKey(message.id, 'message id');
      const target = options?.deadLetter === true ? topic + DLQ_SUFFIX : topic;
      const copy = new Uint8Array(message.payload);
      return runtime.run('restore', options, (signal) => driver.publish(target, copy, stored, id, signal), { 'stowage.topic': topic });
    },
  };
}

/** Up to `limit` messages of `topic` from `fromSeq`, read page by page. */
export async function readFrom(driver: QueueDriver, topic: string, fromSeq: number, limit: number, signal: AbortSignal): Promise<StoredMessage[]> {
  const out: StoredMessage[] = [];
  let from = fromSeq;
  while (out.length < limit) {
    const page = await driver.read(topic, from, Math.min(READ_PAGE, limit - out.length), signal);
    if (page.length === 0) break;
    out.push(...page);
    from = (page.at(-1)?.seq ?? from) + 1;
  }
  return out;
}
