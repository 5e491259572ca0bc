import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCK_FILE, lockDataDir } from '../../src/driver/data-dir-lock.js';

const RACERS = 6;
const ROUNDS = 10;
const racerFile = fileURLToPath(new URL('./fixtures/lock-racer.ts', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'stowage-lock-race-'));

/** One racing process and the answers it has given. */
interface Racer {
  readonly proc: ChildProcessByStdio<Writable, Readable, null>;
  readonly answers: string[];
  readonly waiters: (() => void)[];
}

function startRacer(): Racer {
  const proc = spawn(process.execPath, ['--import', 'tsx', racerFile], { stdio: ['pipe', 'pipe', 'inherit'] });
  const racer: Racer = { proc, answers: [], waiters: [] };
  let buffer = '';
  proc.stdout.on('data', (d: Buffer) => {
    buffer += d.toString();
    for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
      racer.answers.push(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
      racer.waiters.splice(0).forEach((w) => w());
    }
  });
  return racer;
}

async function ask(racer: Racer, line: string): Promise<string> {
  const before = racer.answers.length;
  racer.proc.stdin.write(`${line}\n`);
  while (racer.answers.length === before) await new Promise<void>((resolve) => racer.waiters.push(resolve));
  return racer.answers[before] as string;
}

/** A pid that no process has any more: a child that ran and exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid as number;
}

let racers: Racer[] = [];
let roundNo = 0;
const tally = { rounds: 0, attempts: 0, holders: 0, doubleHolders: 0 };

/** One round: every racer tries to lock a fresh folder (prepared by `setup`) at the same instant. */
async function race(setup: (dir: string) => Promise<void>): Promise<number> {
  const dir = join(root, `r${++roundNo}`);
  await mkdir(dir, { recursive: true });
  await setup(dir);
  const at = Date.now() + 150;
  const answers = await Promise.all(racers.map((r) => ask(r, `lock ${dir} ${at}`)));
  await Promise.all(racers.map((r) => ask(r, 'release')));
  const holders = answers.filter((a) => a === 'LOCKED').length;
  expect(answers.filter((a) => a !== 'LOCKED' && a !== 'UNAVAILABLE')).toEqual([]);
  tally.rounds++;
  tally.attempts += answers.length;
  tally.holders += holders;
  if (holders > 1) tally.doubleHolders++;
  return holders;
}

describe('data folder lock under racing processes', () => {
  beforeAll(async () => {
    racers = Array.from({ length: RACERS }, startRacer);
    // Wait until every racer answers (tsx compiled and loaded it).
    await Promise.all(racers.map((r) => ask(r, 'release')));
  }, 60_000);

  afterAll(() => {
    for (const r of racers) r.proc.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
    console.log(`data-dir lock race: ${tally.rounds} rounds x ${RACERS} processes, ${tally.attempts} attempts, ${tally.holders} locks taken, ${tally.doubleHolders} rounds with two holders`);
  });

  it('a free folder is locked by exactly one of the racing processes', async () => {
    const holders: number[] = [];
    for (let i = 0; i < ROUNDS; i++) holders.push(await race(async () => undefined));
    expect(holders).toEqual(Array<number>(ROUNDS).fill(1));
  }, 60_000);

  it('a lock left by a dead process is taken over by exactly one of the racing processes', async () => {
    const pid = await deadPid();
    const holders: number[] = [];
    for (let i = 0; i < ROUNDS; i++) holders.push(await race((dir) => writeFile(join(dir, LOCK_FILE), `${pid}\n`)));
    expect(holders).toEqual(Array<number>(ROUNDS).fill(1));
  }, 60_000);

  it('an empty lock file left long ago is taken over by exactly one of the racing processes', async () => {
    const holders: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      holders.push(
        await race(async (dir) => {
          await writeFile(join(dir, LOCK_FILE), '');
          const past = new Date(Date.now() - 60_000);
          await utimes(join(dir, LOCK_FILE), past, past);
        }),
      );
    }
    expect(holders).toEqual(Array<number>(ROUNDS).fill(1));
  }, 60_000);

  it('a fresh empty lock file is taken by none of the racing processes', async () => {
    const holders: number[] = [];
    for (let i = 0; i < ROUNDS; i++) holders.push(await race((dir) => writeFile(join(dir, LOCK_FILE), '')));
    expect(holders).toEqual(Array<number>(ROUNDS).fill(0));
  }, 60_000);

  it('a lock held by a live process is refused, naming its pid', async () => {
    const dir = join(root, 'live');
    const at = Date.now() + 50;
    const [first] = racers;
    expect(await ask(first as Racer, `lock ${dir} ${at}`)).toBe('LOCKED');
    const err = await lockDataDir(dir).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UNAVAILABLE' });
    expect(String((err as Error).message)).toContain(`process ${(first as Racer).proc.pid}`);
    await ask(first as Racer, 'release');
    await (await lockDataDir(dir)).release();
  });
});

describe('data folder lock: whose is it', () => {
  const base = mkdtempSync(join(tmpdir(), 'stowage-lock-owner-'));
  afterAll(() => rmSync(base, { recursive: true, force: true }));
  const startOf = (pid: number): string => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] as string;
  };
  const withLock = async (text: string): Promise<string> => {
    const dir = join(base, `owner-${Math.random().toString(36).slice(2)}`);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, LOCK_FILE), text);
    try {
      await (await lockDataDir(dir)).release();
      return 'taken';
    } catch (err) {
      return (err as Error).message;
    }
  };

  it.skipIf(!existsSync('/proc/self/stat'))('a live pid recorded with another start time is a process that reused the pid: its lock is taken over', async () => {
    expect(await withLock(`${process.ppid}\n${hostname()}\n1\n`)).toBe('taken');
    expect(await withLock(`${process.pid}\n${hostname()}\n1\n`)).toBe('taken');
    expect(await withLock(`${process.ppid}\n${hostname()}\n${startOf(process.ppid)}\n`)).toContain(`in use by process ${process.ppid}`);
    expect(await withLock(`${process.pid}\n${hostname()}\n${startOf(process.pid)}\n`)).toContain('already open in this process');
  });

  it('a lock taken on another host is never taken over', async () => {
    expect(await withLock(`999999999\nanother-host.invalid\n1\n`)).toContain('in use by process 999999999');
  });
});
