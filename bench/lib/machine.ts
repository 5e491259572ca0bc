/**
 * Facts about the machine a run happened on, and its raw fsync rate: the ceiling for any durable
 * one-at-a-time write, so every durable figure can be read against it.
 */
import { open, mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem, release, platform } from 'node:os';
import { join } from 'node:path';

/** What the report says about the machine. */
export interface MachineFacts {
  /** CPU model name. */
  readonly cpu: string;
  /** Logical cores. */
  readonly cores: number;
  /** Total memory in MiB. */
  readonly memoryMiB: number;
  /** `process.version`. */
  readonly node: string;
  /** Operating system and kernel. */
  readonly os: string;
  /** 1-minute load average when the run started (the CPU is shared; high load means noisy figures). */
  readonly loadAverageAtStart: number;
  /** Raw append of 128 bytes + fdatasync, one at a time, in the temporary folder's file system. */
  readonly fsyncPerSec: number;
  /** Where the fsync rate was measured. */
  readonly fsyncDir: string;
}

/** Appends 128-byte records with `fdatasync` after each, for about `durationMs`; returns the rate per second. */
export async function measureFsyncRate(durationMs: number, dir = tmpdir()): Promise<number> {
  const folder = await mkdtemp(join(dir, 'stowage-bench-fsync-'));
  const file = await open(join(folder, 'append.log'), 'a');
  const record = Buffer.alloc(128, 0x61);
  try {
    let n = 0;
    const started = performance.now();
    while (performance.now() - started < durationMs) {
      await file.write(record);
      await file.datasync();
      n++;
    }
    return (n / (performance.now() - started)) * 1000;
  } finally {
    await file.close();
    await rm(folder, { recursive: true, force: true });
  }
}

/** Collects the machine facts, measuring the fsync rate for `fsyncMs`. */
export async function machineFacts(fsyncMs: number): Promise<MachineFacts> {
  const info = cpus();
  return {
    cpu: info[0]?.model.trim() ?? 'unknown',
    cores: info.length,
    memoryMiB: Math.round(totalmem() / 1024 / 1024),
    node: process.version,
    os: `${platform()} ${release()}`,
    loadAverageAtStart: Number((loadavg()[0] ?? 0).toFixed(2)),
    fsyncPerSec: Math.round(await measureFsyncRate(fsyncMs)),
    fsyncDir: tmpdir(),
  };
}
