/**
 * redis:// cache get/set against raw ioredis doing the same work (JSON.stringify / JSON.parse of the same
 * value), one at a time and 100 in flight, in one run. Uses STOWAGE_TEST_REDIS_URL, else starts
 * redis-server from PATH on a free port. Each side keeps its best round for throughput and its median
 * round for CPU time per operation (`process.cpuUsage`, user + system, of this process only: the server's
 * work is not counted) — on a shared machine CPU per operation moves far less than throughput. Run
 * compiled (`npm run bench` builds `.bench-build/bench/cache-redis.js`; under tsx the figures are not
 * representative). `BENCH_N`, `BENCH_ROUNDS` set the round size and count; short rounds suit a busy machine.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { redisCacheScheme } from '../src/adapters/redis/index.js';
import { createCache } from '../src/core/cache/cache.js';
import { defaultLogger } from '../src/core/registry.js';
import { parseUrl } from '../src/driver/url.js';

const N = Number(process.env.BENCH_N ?? 5000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const value = { id: 42, name: 'Ada Lovelace', roles: ['admin', 'dev'], active: true };
const keys = Array.from({ length: N }, (_, i) => `user/${i}`);

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

let url = process.env.STOWAGE_TEST_REDIS_URL;
let server: ReturnType<typeof spawn> | undefined;
if (url === undefined) {
  const port = await freePort();
  server = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  url = `redis://127.0.0.1:${port}`;
  await new Promise((r) => setTimeout(r, 300));
}
const { hosts } = parseUrl(url);
const raw = new Redis({ host: hosts[0]?.host, port: hosts[0]?.port });
const cache = createCache(await redisCacheScheme.open(parseUrl(url), { dataDir: '.', env: {}, logger: defaultLogger, openDriver: () => Promise.reject(new Error('none')) }));

/** One round: operations per second and CPU microseconds per operation. */
async function once(fn: () => Promise<void>): Promise<{ opsPerSec: number; cpuUs: number }> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  await fn();
  const elapsed = performance.now() - started;
  const used = process.cpuUsage(cpu);
  return { opsPerSec: N / (elapsed / 1000), cpuUs: (used.user + used.system) / N };
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US').padStart(9);
const inFlight = (op: (k: string) => Promise<unknown>) => async () => {
  for (let i = 0; i < N; i += 100) await Promise.all(keys.slice(i, i + 100).map(op));
};
const oneByOne = (op: (k: string) => Promise<unknown>) => async () => {
  for (const k of keys) await op(k);
};

const rows: [string, () => Promise<void>, () => Promise<void>][] = [
  ['set, one at a time', oneByOne((k) => cache.set(k, value)), oneByOne((k) => raw.set(`raw:${k}`, JSON.stringify(value)))],
  ['get, one at a time', oneByOne((k) => cache.get(k)), oneByOne(async (k) => JSON.parse((await raw.get(`raw:${k}`)) as string))],
  ['set, 100 in flight', inFlight((k) => cache.set(k, value)), inFlight((k) => raw.set(`raw:${k}`, JSON.stringify(value)))],
  ['get, 100 in flight', inFlight((k) => cache.get(k)), inFlight(async (k) => JSON.parse((await raw.get(`raw:${k}`)) as string))],
];
for (const [name, ours, theirs] of rows) {
  // Alternate the two sides round by round so load changes on a shared machine hit both alike.
  await ours();
  await theirs();
  const a: { opsPerSec: number; cpuUs: number }[] = [];
  const b: { opsPerSec: number; cpuUs: number }[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    a.push(await once(ours));
    b.push(await once(theirs));
  }
  const best = (rounds: typeof a): number => Math.max(...rounds.map((x) => x.opsPerSec));
  const cpu = (rounds: typeof a): number => median(rounds.map((x) => x.cpuUs));
  console.log(
    `${name.padEnd(22)} stowage ${fmt(best(a))} ops/s ${cpu(a).toFixed(2).padStart(6)} µs CPU/op   ` +
      `raw ioredis ${fmt(best(b))} ops/s ${cpu(b).toFixed(2).padStart(6)} µs CPU/op   ${(best(a) / best(b)).toFixed(2)}x`,
  );
}
await cache.close();
raw.disconnect();
server?.kill();
