/**
 * `stowage queue pub|sub|stats|dlq ls|dlq replay|purge`.
 *
 * @module
 */
import { UsageError, int, intList, readInput, str, type Command } from '../context.js';
import { renderTable } from '../output.js';

function headersOf(values: Record<string, unknown>): Record<string, string> {
  const raw = values.header;
  const list = Array.isArray(raw) ? raw : raw === undefined ? [] : [raw];
  // No prototype: `--header __proto__=x` must reach the library's check, not set this object's prototype.
  const headers = Object.create(null) as Record<string, string>;
  for (const item of list) {
    const text = String(item);
    const eq = text.indexOf('=');
    if (eq <= 0) throw new UsageError(`--header must be name=value, got "${text}"`);
    headers[text.slice(0, eq)] = text.slice(eq + 1);
  }
  return headers;
}

/** The queue commands. */
export const queueCommands: readonly Command[] = [
  {
    path: ['queue', 'pub'],
    summary: 'publish a message (argument, --file, or stdin)',
    usage: '<topic> [payload|-]',
    args: [1, 2],
    options: { file: { type: 'string' }, id: { type: 'string' }, header: { type: 'string', multiple: true } },
    examples: [
      `stowage queue pub jobs '{"id":"j1","customer":"acme","n":3}' --id j1`,
      'stowage queue pub jobs --file job.json --header source=cli',
      'cat jobs.ndjson | while read -r l; do stowage queue pub jobs "$l"; done',
    ],
    async run(ctx) {
      const payload = await readInput(ctx, ctx.args[1]);
      await using s = await ctx.open(['queue']);
      const result = await s.queue.publish(ctx.args[0] ?? '', payload, { id: str(ctx.values, 'id'), headers: headersOf(ctx.values) });
      if (ctx.json) ctx.emit(result);
      else ctx.out(result.duplicate ? `duplicate of seq ${result.seq} (id seen before; nothing stored)\n` : `${ctx.palette.green('published')} seq ${result.seq}\n`);
      return 0;
    },
  },
  {
    path: ['queue', 'sub'],
    summary: 'consume messages as a member of a group and print them',
    usage: '<topic>',
    args: [1, 1],
    description:
      'Each message is acked after it is printed, unless --no-ack (it is then delivered again after ackWait). ' +
      'Stops on Ctrl-C, after --count messages, or when no message came for --idle-ms.',
    options: {
      group: { type: 'string' },
      count: { type: 'string' },
      'idle-ms': { type: 'string' },
      'no-ack': { type: 'boolean' },
      'ack-wait-ms': { type: 'string' },
    },
    examples: ['stowage queue sub jobs --group debug', 'stowage queue sub jobs --group workers --count 10 --json', 'stowage queue sub jobs --group peek --no-ack --idle-ms 2000'],
    async run(ctx) {
      const group = str(ctx.values, 'group');
      if (!group) throw new UsageError('queue sub needs --group <name>');
      const count = int(ctx.values, 'count', { min: 1 });
      const idleMs = int(ctx.values, 'idle-ms', { min: 1 });
      await using s = await ctx.open(['queue']);
      const stop = new AbortController();
      // A Ctrl-C while the queue opened has already aborted ctx.signal: a listener added now would never run.
      if (ctx.signal.aborted) stop.abort();
      else ctx.signal.addEventListener('abort', () => stop.abort(), { once: true });
      let idle: NodeJS.Timeout | undefined;
      const armIdle = (): void => {
        clearTimeout(idle);
        if (idleMs !== undefined) idle = setTimeout(() => stop.abort(), idleMs);
      };
      armIdle();
      let seen = 0;
      const consumer = s.queue.consume(ctx.args[0] ?? '', group, { signal: stop.signal, ackWaitMs: int(ctx.values, 'ack-wait-ms', { min: 1 }) });
      if (!ctx.json) ctx.err(ctx.errPalette.dim(`consuming "${ctx.args[0] ?? ''}" as group "${group}" (Ctrl-C stops)\n`));
      try {
        for await (const d of consumer) {
          armIdle();
          const text = d.text();
          if (ctx.json) {
            ctx.emit({ seq: d.seq, id: d.id, deliveryCount: d.deliveryCount, publishedAt: d.publishedAt.toISOString(), headers: d.headers, payload: text });
          } else {
            ctx.out(`${ctx.palette.dim(`#${d.seq}${d.id ? ` id=${d.id}` : ''}${d.deliveryCount > 1 ? ` delivery ${d.deliveryCount}` : ''}`)} ${text}\n`);
          }
          if (ctx.values['no-ack'] !== true) await d.ack();
          if (count !== undefined && ++seen >= count) break;
        }
      } finally {
        clearTimeout(idle);
        await consumer.close();
      }
      return 0;
    },
  },
  {
    path: ['queue', 'stats'],
    summary: 'messages, last sequence, dead letters and each group\'s backlog',
    usage: '<topic>',
    args: [1, 1],
    examples: ['stowage queue stats jobs', 'stowage queue stats jobs --json'],
    async run(ctx) {
      await using s = await ctx.open(['queue']);
      const stats = await s.queue.stats(ctx.args[0] ?? '');
      if (ctx.json) ctx.emit(stats);
      else {
        ctx.out(`${stats.topic}: ${stats.messages} messages, last seq ${stats.lastSeq}, ${stats.deadLetters} dead letters\n`);
        ctx.out(renderTable(['group', 'backlog', 'pending', 'redelivered', 'ack floor'], stats.groups.map((g) => [g.group, String(g.backlog), String(g.pending), String(g.redelivered), String(g.ackFloor)]), ctx.palette));
      }
      return 0;
    },
  },
  {
    path: ['queue', 'dlq', 'ls'],
    summary: 'list a topic\'s dead letters, oldest first',
    usage: '<topic>',
    args: [1, 1],
    options: { limit: { type: 'string' } },
    examples: ['stowage queue dlq ls jobs', 'stowage queue dlq ls jobs --limit 10 --json'],
    async run(ctx) {
      await using s = await ctx.open(['queue']);
      const letters = await s.queue.deadLetters(ctx.args[0] ?? '', { limit: int(ctx.values, 'limit', { min: 1 }) });
      const text = (p: Uint8Array): string => Buffer.from(p).toString('utf8');
      if (ctx.json) ctx.emit(letters.map((l) => ({ ...l, payload: text(l.payload), deadAt: l.deadAt.toISOString() })));
      else {
        ctx.out(
          renderTable(
            ['dlq seq', 'group', 'original seq', 'deliveries', 'reason', 'payload'],
            letters.map((l) => [String(l.seq), l.group, String(l.originalSeq), String(l.deliveryCount), l.reason, text(l.payload).slice(0, 50)]),
            ctx.palette,
          ),
        );
      }
      return 0;
    },
  },
  {
    path: ['queue', 'dlq', 'replay'],
    summary: 'send dead letters back to the group that failed them',
    usage: '<topic>',
    args: [1, 1],
    options: { seq: { type: 'string' } },
    examples: ['stowage queue dlq replay jobs', 'stowage queue dlq replay jobs --seq 3,4'],
    async run(ctx) {
      await using s = await ctx.open(['queue']);
      const replayed = await s.queue.replay(ctx.args[0] ?? '', { seqs: intList(ctx.values, 'seq') });
      if (ctx.json) ctx.emit({ replayed });
      else ctx.out(`${ctx.palette.green('replayed')} ${replayed} dead letters\n`);
      return 0;
    },
  },
  {
    path: ['queue', 'purge'],
    summary: 'remove every message of a topic; needs --yes',
    usage: '<topic>',
    args: [1, 1],
    options: { yes: { type: 'boolean' } },
    examples: ['stowage queue purge scratch --yes'],
    async run(ctx) {
      if (ctx.values.yes !== true) throw new UsageError('purge removes every message for every group: add --yes');
      await using s = await ctx.open(['queue']);
      await s.queue.purge(ctx.args[0] ?? '');
      if (ctx.json) ctx.emit({ purged: ctx.args[0] });
      else ctx.out(`${ctx.palette.red('purged')} ${ctx.args[0]}\n`);
      return 0;
    },
  },
];
