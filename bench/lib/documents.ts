/**
 * The documents workload shared by the SQLite and MySQL benchmarks: user-like JSON documents with an
 * indexed `team` field, and the three operations the issues ask for (insert, get by id, indexed find),
 * written once against the Collection port so both adapters are measured on the same work.
 */
import { randomUUID } from 'node:crypto';
import type { JsonObject } from '../../src/ports/common.js';
import type { Collection } from '../../src/ports/documents.js';
import type { Side } from './benchmark.js';

/** Distinct values of the indexed field. */
export const TEAMS = 200;
/** Documents loaded before get and find are measured. */
export const PRELOAD = 1_000;
/** Page size of the indexed find. */
export const FIND_LIMIT = 10;

/** The n-th benchmark document (about 200 bytes of JSON). */
export function documentOf(n: number): JsonObject {
  return {
    name: `user ${n}`,
    email: `user${n}@example.com`,
    team: `team-${n % TEAMS}`,
    age: 20 + (n % 50),
    active: n % 3 !== 0,
    address: { city: `city-${n % 37}`, zip: String(10000 + (n % 9000)) },
    tags: ['a', n % 2 === 0 ? 'even' : 'odd'],
  };
}

/** A raw client's version of the three operations, doing the same work as the port. */
export interface RawDocuments {
  /** Stores a new document under `id` with version 1. */
  insert(id: string, data: JsonObject): Promise<void>;
  /** Reads and parses a document by id. */
  get(id: string): Promise<unknown>;
  /** Reads and parses up to `limit` documents whose `team` equals `team`, in id order. */
  findByTeam(team: string, limit: number): Promise<unknown[]>;
  /** Stores many documents in one transaction (used only to preload, untimed). */
  insertBatch(docs: readonly { id: string; data: JsonObject }[]): Promise<void>;
}

/** The operation measured. */
export type DocumentOp = 'insert' | 'get' | 'find';

/**
 * The two sides of one documents operation, one call at a time. `ids` are the ids preloaded on each side
 * (for `get`); inserts use fresh ids (UUIDv7 from the port; `randomUUID` on the raw side).
 */
export function documentSides(
  op: DocumentOp,
  collection: Collection,
  stowageIds: readonly string[],
  raw: RawDocuments,
  rawIds: readonly string[],
  labels: { stowage: string; baseline: string },
): { stowage: Side; baseline: Side } {
  let counter = PRELOAD;
  switch (op) {
    case 'insert':
      return {
        stowage: {
          label: labels.stowage,
          async run(n) {
            for (let i = 0; i < n; i++) await collection.insert(documentOf(counter++));
          },
        },
        baseline: {
          label: labels.baseline,
          async run(n) {
            for (let i = 0; i < n; i++) await raw.insert(randomUUID(), documentOf(counter++));
          },
        },
      };
    case 'get':
      return {
        stowage: {
          label: labels.stowage,
          async run(n) {
            for (let i = 0; i < n; i++) await collection.get(stowageIds[i % stowageIds.length] as string);
          },
        },
        baseline: {
          label: labels.baseline,
          async run(n) {
            for (let i = 0; i < n; i++) await raw.get(rawIds[i % rawIds.length] as string);
          },
        },
      };
    case 'find':
      return {
        stowage: {
          label: labels.stowage,
          async run(n) {
            for (let i = 0; i < n; i++) await collection.find({ team: `team-${i % TEAMS}` }, { limit: FIND_LIMIT });
          },
        },
        baseline: {
          label: labels.baseline,
          async run(n) {
            for (let i = 0; i < n; i++) await raw.findByTeam(`team-${i % TEAMS}`, FIND_LIMIT);
          },
        },
      };
  }
}

/** How many calls the "in flight" rows keep outstanding at once. */
export const IN_FLIGHT = 256;

/**
 * Runs `op(0)` … `op(n - 1)` with up to `width` calls outstanding at once (each worker starts its next call
 * when its previous one settles), as a server handling many requests would.
 */
export async function inFlight(n: number, width: number, op: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) await op(next++);
  };
  await Promise.all(Array.from({ length: Math.min(width, n) }, worker));
}

/** Preloads `count` documents (default {@link PRELOAD}) on both sides, 250 per transaction (the port through `insertMany`). */
export async function preload(collection: Collection, raw: RawDocuments, count = PRELOAD): Promise<{ stowageIds: string[]; rawIds: string[] }> {
  const stowageIds: string[] = [];
  for (let n = 0; n < count; n += 250) {
    const docs = Array.from({ length: Math.min(250, count - n) }, (_, i) => documentOf(n + i));
    for (const record of await collection.insertMany(docs)) stowageIds.push(record.id);
  }
  const rawIds = Array.from({ length: count }, () => randomUUID());
  for (let n = 0; n < count; n += 250) {
    await raw.insertBatch(rawIds.slice(n, n + 250).map((id, i) => ({ id, data: documentOf(n + i) })));
  }
  return { stowageIds, rawIds };
}
