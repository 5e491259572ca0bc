/**
 * `stowage doctor`: one real round-trip on each configured port, as a table with a hint per failure.
 *
 * @module
 */
import type { HealthReport, PortName } from '../ports/common.js';
import { StowageError } from '../ports/errors.js';
import { PORTS, resolveProfile, type Profile, type ResolvedProfile } from '../core/profile.js';
import { openStowage, type Stowage, type StowageOptions } from '../core/stowage.js';
import type { SchemeRegistry } from '../core/registry.js';
import { reasonOf, type ErrorReason } from '../driver/errors.js';
import { redactUrlText } from '../driver/url.js';
import { paletteFor, renderTable, type Palette } from './output.js';

/** The doctor's finding for one port. */
export interface DoctorRow {
  /** The port. */
  readonly port: PortName;
  /** Its URL, password removed. */
  readonly url: string;
  /** Where the URL came from (code, environment, file, default). */
  readonly source: string;
  /** Whether the port opened and answered a round-trip. */
  readonly ok: boolean;
  /** The backend's scheme. */
  readonly backend: string;
  /** The server's version, when it reports one. */
  readonly serverVersion?: string;
  /** The round-trip's duration in milliseconds. */
  readonly latencyMs?: number;
  /** The adapter's declared capabilities. */
  readonly capabilities: readonly string[];
  /** The failure, when not ok, with its `details.reason` when it has one. */
  readonly error?: { readonly code: string; readonly message: string; readonly reason?: ErrorReason };
  /** What to check, when not ok. */
  readonly hint?: string;
}

interface PortLike {
  readonly backend: string;
  readonly capabilities: ReadonlySet<string>;
  health(options?: { timeoutMs?: number }): Promise<HealthReport>;
}

/** What {@link hintFor} reads of a failure: its code, and the reason in its `details` (see {@link ErrorReason}). */
export interface DoctorError {
  /** The StowageError code. */
  readonly code: string;
  /** The message, shown as it is: never read for the hint. */
  readonly message: string;
  /** The error's `details`: `reason`, and `install` for a missing client. */
  readonly details?: Readonly<Record<string, unknown>>;
}

/**
 * A hint for a failure, by the reason the error carries in `details.reason` (missing client library, data
 * folder in use, file permissions, wrong master key, missing stream), else by its code (unreachable,
 * deadline, auth, bad URL, corrupted data). The message is never parsed: its wording may change.
 */
export function hintFor(port: PortName, url: string, error: DoctorError): string {
  const where = url.replace(/\?.*$/, '');
  switch (reasonOf(error)) {
    case 'missing-client': {
      const install = error.details?.install;
      return typeof install === 'string' ? `missing client: run \`${install}\` in the service's project` : 'missing client: install the client library of this scheme';
    }
    case 'data-dir-locked':
      return 'the data folder is locked by another running process: stop it or point STOWAGE_DATA_DIR elsewhere';
    case 'file-permission':
      return 'data folder permissions: the process must be able to read and write the folder and its files (check owner and mode, e.g. chmod 700)';
    case 'wrong-master-key':
      return 'auth: the master key does not open this keyring (check STOWAGE_MASTER_KEY or the key file)';
    case 'missing-stream':
      return 'missing stream: create it (nats stream add) or let Stowage create it (check the URL\'s ?stream= and the account\'s JetStream permissions)';
    case undefined:
      break;
  }
  switch (error.code) {
    case 'UNAVAILABLE':
      return `unreachable: is the server running and listening at ${where}? check host, port, firewall and TLS`;
    case 'TIMEOUT':
      return 'no answer within the deadline: the server is paused, overloaded or behind a black-holing firewall';
    case 'PERMISSION_DENIED':
      return 'auth: credentials refused (check the user, password file, token file or VAULT_TOKEN)';
    case 'INVALID_ARGUMENT':
      return `bad URL or parameters for the ${port} port: see the adapter's documented URL form`;
    case 'CORRUPTED':
      return 'stored data failed its checksum: restore from a backup or run the adapter\'s repair';
    default:
      return 'see the error message; run with the same URL in a small script to get the full cause';
  }
}

/** Checks ports that are already open (used by the walkthrough, which holds the data folder itself). */
export async function checkOpenPorts(stowage: Stowage, ports: readonly PortName[] = PORTS, timeoutMs = 5000): Promise<DoctorRow[]> {
  const rows: DoctorRow[] = [];
  for (const port of ports) {
    const target = stowage[port] as unknown as PortLike;
    rows.push(await checkPort(port, stowage.profile.urls[port], stowage.profile.sources[port], target, timeoutMs));
  }
  return rows;
}

async function checkPort(port: PortName, url: string, source: string, target: PortLike, timeoutMs: number): Promise<DoctorRow> {
  const report = await target.health({ timeoutMs });
  const base = { port, url, source, backend: report.backend || target.backend, latencyMs: Math.round(report.latencyMs * 10) / 10, capabilities: [...target.capabilities].sort() };
  if (report.ok) return { ...base, ok: true, ...(report.serverVersion ? { serverVersion: report.serverVersion } : {}) };
  const failure: DoctorError = { code: report.error?.code ?? 'INTERNAL', message: report.error?.message ?? 'health check failed', details: report.error?.details };
  return { ...base, ok: false, error: rowError(failure), hint: hintFor(port, url, failure) };
}

/** The failure as a row shows it: code, message and reason (the other details may be long or internal). */
function rowError(failure: DoctorError): NonNullable<DoctorRow['error']> {
  const reason = reasonOf(failure);
  return { code: failure.code, message: failure.message, ...(reason ? { reason } : {}) };
}

/** Options of {@link doctor}. */
export interface DoctorOptions extends Pick<StowageOptions, 'env' | 'cwd' | 'logger'> {
  /** The profile (code fields win over environment and file). */
  profile?: Profile;
  /** The ports to check (default all five). */
  ports?: readonly PortName[];
  /** The scheme registry (default: every built-in scheme). */
  registry?: SchemeRegistry;
  /** The deadline of each round-trip (default 5000 ms). */
  timeoutMs?: number;
}

/**
 * Opens each port on its own (so one failing backend does not hide the others), does one real round-trip
 * with `health()`, and returns a row per port. Never throws for a backend failure: it is reported in its row.
 *
 * @example
 * ```ts
 * const rows = await doctor();
 * process.stdout.write(formatDoctorTable(rows));
 * if (rows.some((r) => !r.ok)) process.exitCode = 1;
 * ```
 */
export async function doctor(options: DoctorOptions = {}): Promise<DoctorRow[]> {
  const registry = options.registry ?? (await import('../schemes.js')).createDefaultRegistry();
  const profile: Profile = { timeoutMs: options.timeoutMs ?? 5000, ...options.profile };
  const resolved: ResolvedProfile = await resolveProfile(profile, { env: options.env, cwd: options.cwd });
  const rows: DoctorRow[] = [];
  for (const port of options.ports ?? PORTS) {
    const url = redactUrlText(resolved.urls[port]);
    let stowage: Stowage | undefined;
    try {
      stowage = await openWithin(
        openStowage(registry, profile, { ports: [port], env: options.env, cwd: options.cwd, logger: options.logger }),
        (options.timeoutMs ?? 5000) + 1000,
        port,
      );
      rows.push(await checkPort(port, url, resolved.sources[port], stowage[port] as unknown as PortLike, options.timeoutMs ?? 5000));
    } catch (err) {
      const e = StowageError.is(err) ? err : new StowageError('INTERNAL', String(err));
      rows.push({ port, url, source: resolved.sources[port], ok: false, backend: url.split(':')[0] ?? '', capabilities: [], error: rowError(e), hint: hintFor(port, url, e) });
    } finally {
      await stowage?.close().catch(() => undefined);
    }
  }
  return rows;
}

/**
 * An open that does not finish in time is reported as TIMEOUT (a backend can hang before any call has a
 * deadline); if it finishes later, what it opened is closed.
 */
async function openWithin(opening: Promise<Stowage>, ms: number, port: PortName): Promise<Stowage> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      opening.then((s) => s.close(), () => undefined).catch(() => undefined);
      reject(new StowageError('TIMEOUT', `opening the ${port} port did not finish within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([opening, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The doctor's table: port, backend, status, server version, latency, capabilities, then hints for failures. */
export function formatDoctorTable(rows: readonly DoctorRow[], palette: Palette = paletteFor({})): string {
  const table = renderTable(
    ['port', 'backend', 'status', 'server', 'latency', 'capabilities', 'url'],
    rows.map((r) => [
      r.port,
      r.backend,
      r.ok ? palette.green('ok') : palette.red(r.error?.code ?? 'FAILED'),
      r.serverVersion ?? '-',
      r.latencyMs === undefined ? '-' : `${r.latencyMs} ms`,
      r.capabilities.length > 0 ? r.capabilities.join(',') : '-',
      palette.dim(r.url),
    ]),
    palette,
  );
  const failures = rows.filter((r) => !r.ok);
  if (failures.length === 0) return table;
  const notes = failures.map((r) => `${palette.red('✗')} ${r.port}: ${r.error?.message ?? 'failed'}\n  hint: ${r.hint ?? ''}`);
  return `${table}\n${notes.join('\n')}\n`;
}
