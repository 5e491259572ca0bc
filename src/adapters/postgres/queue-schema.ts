/**
 * The tables and functions of the PostgreSQL queue, created idempotently under an advisory lock.
 *
 * - `stowage_queue_topics`: one row per topic holding its last sequence. A publish locks the row for its
 *   transaction, so sequences are given and committed in order: a reader that sees sequence n sees every
 *   earlier one, and a group's cursor can move past what it read without ever skipping a late commit.
 * - `stowage_queue_messages`: the log, `(topic, seq)`. Acks never remove a message (every group reads the
 *   same log); `remove`, `purge` and retention do.
 * - `stowage_queue_dedupe`: publisher ids and the sequence they got, until the dedupe window ends.
 * - `stowage_queue_groups`: each group's cursor (the next sequence never delivered to it), its
 *   redelivery count, and its floor: no unsettled delivery of the group has a lower sequence. An ack deletes
 *   its row, and the row's index entry stays until a vacuum, so a busy group's key range fills with dead
 *   entries (one per message acked since the last vacuum); the reads of a group's unsettled rows start at
 *   the floor, which each claim moves up to the lowest one, instead of walking them all.
 * - `stowage_queue_deliveries`: a group's unsettled messages: delivered and not yet acked, or nak'ed and
 *   waiting. `visible_at` is when it may be delivered (again): the ackWait deadline of a delivery, or the
 *   end of a nak's delay. An ack deletes the row.
 *
 * The two hot paths are functions so that each is one round-trip: `stowage_queue_publish` (a batch of
 * messages of one topic, with dedupe) and `stowage_queue_claim` (due redeliveries first, taken with
 * `FOR UPDATE SKIP LOCKED` so that a claim never waits on an ack, nak or touch in progress; then new
 * messages from the cursor).
 *
 * @module
 */
import type { Pool } from 'pg';
import { inTransaction } from './connection.js';

/** The schema version these statements create; bumped when a statement changes, so that it is replaced. */
export const QUEUE_SCHEMA_VERSION = 2;

/** A quoted SQL identifier (the schema name is validated before, this only guards the quoting). */
export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** The NOTIFY channel of a schema's queue: its payload is the topic that received messages. */
export function notifyChannel(schema: string): string {
  return `stowage_queue.${schema}`;
}

/** The statements that create the queue in `schema`; each is idempotent. */
export function queueSchemaStatements(schema: string): string[] {
  const s = ident(schema);
  const channel = notifyChannel(schema).replaceAll("'", "''");
  return [
    `CREATE SCHEMA IF NOT EXISTS ${s}`,
    `CREATE TABLE IF NOT EXISTS ${s}.stowage_queue_topics (
       topic text PRIMARY KEY,
       last_seq bigint NOT NULL DEFAULT 0)`,
    `CREATE TABLE IF NOT EXISTS ${s}.stowage_queue_messages (
       topic text NOT NULL,
       seq bigint NOT NULL,
       id text,
       headers jsonb NOT NULL,
       payload bytea NOT NULL,
       published_at timestamptz NOT NULL,
       PRIMARY KEY (topic, seq))`,
    `CREATE INDEX IF NOT EXISTS stowage_queue_messages_age ON ${s}.stowage_queue_messages (published_at)`,
    `CREATE TABLE IF NOT EXISTS ${s}.stowage_queue_dedupe (
       topic text NOT NULL,
       id text NOT NULL,
       seq bigint NOT NULL,
       expires_at timestamptz NOT NULL,
       PRIMARY KEY (topic, id))`,
    `CREATE INDEX IF NOT EXISTS stowage_queue_dedupe_expiry ON ${s}.stowage_queue_dedupe (expires_at)`,
    `CREATE TABLE IF NOT EXISTS ${s}.stowage_queue_groups (
       topic text NOT NULL,
       grp text NOT NULL,
       next_seq bigint NOT NULL,
       redelivered bigint NOT NULL DEFAULT 0,
       PRIMARY KEY (topic, grp))`,
    // Added in version 2 (see stowage_queue_claim); 0, a floor below every sequence, in a group made before.
    `ALTER TABLE ${s}.stowage_queue_groups ADD COLUMN IF NOT EXISTS floor_seq bigint NOT NULL DEFAULT 0`,
    // No index on visible_at: it changes on every touch and nak, and an unindexed column keeps those
    // updates HOT; a group's unsettled rows are few (its consumers' prefetch and delayed naks).
    `CREATE TABLE IF NOT EXISTS ${s}.stowage_queue_deliveries (
       topic text NOT NULL,
       grp text NOT NULL,
       seq bigint NOT NULL,
       deliveries integer NOT NULL,
       visible_at timestamptz NOT NULL,
       PRIMARY KEY (topic, grp, seq))`,
    `CREATE TABLE IF NOT EXISTS ${s}.stowage_queue_schema (version integer NOT NULL)`,
    // Publishes a batch of one topic. Returns, per message in order, its sequence and whether its id was a
    // duplicate within the window. The topic row is locked first: publishes of a topic are serialized, so
    // sequences are committed in order and the dedupe lookups see every earlier publish.
    `CREATE OR REPLACE FUNCTION ${s}.stowage_queue_publish(p_topic text, p_ids text[], p_headers jsonb[], p_payloads bytea[], p_window_ms bigint)
     RETURNS TABLE (o_seq bigint, o_duplicate boolean) LANGUAGE plpgsql AS $fn$
     DECLARE
       v_last bigint;
       v_first bigint;
       v_seen bigint;
       v_now timestamptz := clock_timestamp();
     BEGIN
       INSERT INTO ${s}.stowage_queue_topics AS t (topic) VALUES (p_topic)
         ON CONFLICT (topic) DO UPDATE SET last_seq = t.last_seq
         RETURNING t.last_seq INTO v_last;
       v_first := v_last;
       FOR i IN 1 .. coalesce(array_length(p_payloads, 1), 0) LOOP
         IF p_ids[i] IS NOT NULL THEN
           SELECT d.seq INTO v_seen FROM ${s}.stowage_queue_dedupe d
             WHERE d.topic = p_topic AND d.id = p_ids[i] AND d.expires_at > v_now;
           IF FOUND THEN
             o_seq := v_seen; o_duplicate := true; RETURN NEXT;
             CONTINUE;
           END IF;
           INSERT INTO ${s}.stowage_queue_dedupe AS d (topic, id, seq, expires_at)
             VALUES (p_topic, p_ids[i], v_last + 1, v_now + p_window_ms * interval '1 millisecond')
             ON CONFLICT (topic, id) DO UPDATE SET seq = excluded.seq, expires_at = excluded.expires_at;
         END IF;
         v_last := v_last + 1;
         INSERT INTO ${s}.stowage_queue_messages (topic, seq, id, headers, payload, published_at)
           VALUES (p_topic, v_last, p_ids[i], p_headers[i], p_payloads[i], v_now);
         o_seq := v_last; o_duplicate := false; RETURN NEXT;
       END LOOP;
       IF v_last > v_first THEN
         UPDATE ${s}.stowage_queue_topics SET last_seq = v_last WHERE topic = p_topic;
         PERFORM pg_notify('${channel}', p_topic);
       END IF;
     END $fn$`,
    // Acks the deliveries given (sequence and delivery count: an ack of an older delivery of a message that
    // was redelivered since changes nothing). One primary-key delete each rather than one join: the planner
    // sees a small table and scans the group's whole key range for the join, dead index entries included,
    // and a busy group leaves one per message acked since the last vacuum (a claim of 256 with its acks took
    // 23 ms on 50,000 of them, 7.6 ms with the deletes one by one).
    `CREATE OR REPLACE FUNCTION ${s}.stowage_queue_ack(p_topic text, p_grp text, p_seqs bigint[], p_counts integer[])
     RETURNS void LANGUAGE plpgsql AS $fn$
     BEGIN
       FOR i IN 1 .. coalesce(array_length(p_seqs, 1), 0) LOOP
         DELETE FROM ${s}.stowage_queue_deliveries d
           WHERE d.topic = p_topic AND d.grp = p_grp AND d.seq = p_seqs[i] AND d.deliveries = p_counts[i];
       END LOOP;
     END $fn$`,
    // Acks the deliveries given (as stowage_queue_ack), then claims up to p_limit messages for one consumer of a
    // group: due redeliveries first (lowest sequence first), then new messages from the group's cursor. The
    // group row is locked for the claim, so the consumers of a group take turns moving its cursor and never
    // receive the same new message. Acks ride with the next claim: one commit for both.
    `CREATE OR REPLACE FUNCTION ${s}.stowage_queue_claim(p_topic text, p_grp text, p_limit integer, p_ack_wait_ms bigint, p_ack_seqs bigint[], p_ack_counts integer[])
     RETURNS TABLE (o_seq bigint, o_deliveries integer, o_id text, o_headers jsonb, o_payload bytea, o_published_at timestamptz)
     LANGUAGE plpgsql AS $fn$
     DECLARE
       v_next bigint;
       v_floor bigint;
       v_low bigint;
       v_taken integer := 0;
       v_last bigint;
       v_deadline timestamptz := clock_timestamp() + p_ack_wait_ms * interval '1 millisecond';
     BEGIN
       IF coalesce(array_length(p_ack_seqs, 1), 0) > 0 THEN
         PERFORM ${s}.stowage_queue_ack(p_topic, p_grp, p_ack_seqs, p_ack_counts);
       END IF;
       SELECT g.next_seq, g.floor_seq INTO v_next, v_floor FROM ${s}.stowage_queue_groups g WHERE g.topic = p_topic AND g.grp = p_grp FOR UPDATE;
       IF NOT FOUND THEN
         INSERT INTO ${s}.stowage_queue_groups (topic, grp, next_seq)
           VALUES (p_topic, p_grp, coalesce(
             (SELECT min(m.seq) FROM ${s}.stowage_queue_messages m WHERE m.topic = p_topic),
             (SELECT t.last_seq + 1 FROM ${s}.stowage_queue_topics t WHERE t.topic = p_topic),
             1))
           ON CONFLICT DO NOTHING;
         SELECT g.next_seq, g.floor_seq INTO v_next, v_floor FROM ${s}.stowage_queue_groups g WHERE g.topic = p_topic AND g.grp = p_grp FOR UPDATE;
       END IF;
       -- The group's lowest unsettled sequence, walked to from the floor: past only what was acked since.
       SELECT d.seq INTO v_low FROM ${s}.stowage_queue_deliveries d
         WHERE d.topic = p_topic AND d.grp = p_grp AND d.seq >= v_floor ORDER BY d.seq LIMIT 1;
       IF v_low IS NOT NULL THEN
         RETURN QUERY
           WITH due AS (
             SELECT d.seq FROM ${s}.stowage_queue_deliveries d
             WHERE d.topic = p_topic AND d.grp = p_grp AND d.seq >= v_low AND d.visible_at <= clock_timestamp()
             ORDER BY d.seq LIMIT p_limit FOR UPDATE SKIP LOCKED),
           taken AS (
             UPDATE ${s}.stowage_queue_deliveries d SET deliveries = d.deliveries + 1, visible_at = v_deadline
             FROM due WHERE d.topic = p_topic AND d.grp = p_grp AND d.seq = due.seq
             RETURNING d.seq, d.deliveries)
           SELECT m.seq, taken.deliveries, m.id, m.headers, m.payload, m.published_at
           FROM taken JOIN ${s}.stowage_queue_messages m ON m.topic = p_topic AND m.seq = taken.seq
           ORDER BY m.seq;
         GET DIAGNOSTICS v_taken = ROW_COUNT;
       END IF;
       IF v_taken < p_limit THEN
         SELECT max(n.seq) INTO v_last FROM (
           SELECT m.seq FROM ${s}.stowage_queue_messages m
           WHERE m.topic = p_topic AND m.seq >= v_next ORDER BY m.seq LIMIT p_limit - v_taken) n;
         IF v_last IS NOT NULL THEN
           INSERT INTO ${s}.stowage_queue_deliveries (topic, grp, seq, deliveries, visible_at)
             SELECT p_topic, p_grp, m.seq, 1, v_deadline FROM ${s}.stowage_queue_messages m
             WHERE m.topic = p_topic AND m.seq >= v_next AND m.seq <= v_last
             ON CONFLICT DO NOTHING;
           RETURN QUERY
             SELECT m.seq, 1, m.id, m.headers, m.payload, m.published_at FROM ${s}.stowage_queue_messages m
             WHERE m.topic = p_topic AND m.seq >= v_next AND m.seq <= v_last ORDER BY m.seq;
         END IF;
       END IF;
       -- One update of the group row for the cursor, the floor and the redelivery count, when one moved.
       IF v_taken > 0 OR v_last IS NOT NULL OR coalesce(v_low, v_next) <> v_floor THEN
         UPDATE ${s}.stowage_queue_groups
           SET next_seq = coalesce(v_last + 1, v_next), floor_seq = coalesce(v_low, v_next), redelivered = redelivered + v_taken
           WHERE topic = p_topic AND grp = p_grp;
       END IF;
     END $fn$`,
  ];
}

/**
 * Creates (or upgrades) the queue's tables and functions in `schema`. Several processes may start at once:
 * a transaction-scoped advisory lock makes them take turns, and the recorded version lets the later ones
 * skip the work.
 */
export async function ensureQueueSchema(pool: Pool, schema: string): Promise<void> {
  await inTransaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`stowage_queue_schema:${schema}`]);
    const exists = await client.query<{ found: boolean }>('SELECT to_regclass($1) IS NOT NULL AS found', [`${ident(schema)}.stowage_queue_schema`]);
    if (exists.rows[0]?.found === true) {
      const v = await client.query<{ version: number | null }>(`SELECT max(version) AS version FROM ${ident(schema)}.stowage_queue_schema`);
      if ((v.rows[0]?.version ?? 0) >= QUEUE_SCHEMA_VERSION) return;
    }
    for (const statement of queueSchemaStatements(schema)) await client.query(statement);
    await client.query(`DELETE FROM ${ident(schema)}.stowage_queue_schema`);
    await client.query(`INSERT INTO ${ident(schema)}.stowage_queue_schema (version) VALUES ($1)`, [QUEUE_SCHEMA_VERSION]);
  });
}
