/**
 * Terminal output of the `stowage` command: colours (only on a TTY, never with `NO_COLOR`), tables and
 * progress bars.
 *
 * @module
 */

/** Colour functions; each is the identity when colours are off. */
export interface Palette {
  /** Success. */
  green(text: string): string;
  /** Failure. */
  red(text: string): string;
  /** Warning. */
  yellow(text: string): string;
  /** Less important text. */
  dim(text: string): string;
  /** Headings. */
  bold(text: string): string;
}

const wrap = (open: number, close: number) => (text: string) => `\u001b[${open}m${text}\u001b[${close}m`;

/**
 * The palette for a stream: colours when it is a TTY and neither `NO_COLOR` (any value) nor `--json` says
 * otherwise.
 */
export function paletteFor(stream: { isTTY?: boolean }, env: Readonly<Record<string, string | undefined>> = process.env, json = false): Palette {
  const on = stream.isTTY === true && env.NO_COLOR === undefined && !json && env.TERM !== 'dumb';
  if (!on) {
    const id = (t: string): string => t;
    return { green: id, red: id, yellow: id, dim: id, bold: id };
  }
  return { green: wrap(32, 39), red: wrap(31, 39), yellow: wrap(33, 39), dim: wrap(2, 22), bold: wrap(1, 22) };
}

// Escape sequences take no room on screen.
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;

function visibleLength(text: string): number {
  return [...text.replace(ANSI, '')].length;
}

/**
 * Renders rows as a table with a header line; cells may carry colours (widths ignore escape sequences).
 *
 * @example
 * ```ts
 * renderTable(['port', 'ok'], [['config', 'yes']]);
 * ```
 */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[], palette?: Palette): string {
  const widths = headers.map((h, i) => Math.max(visibleLength(h), ...rows.map((r) => visibleLength(r[i] ?? ''))));
  const pad = (text: string, i: number): string => text + ' '.repeat(Math.max(0, (widths[i] ?? 0) - visibleLength(text)));
  const head = headers.map((h, i) => pad(h, i)).join('  ').trimEnd();
  const lines = [palette ? palette.bold(head) : head, widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const row of rows) lines.push(headers.map((_, i) => pad(row[i] ?? '', i)).join('  ').trimEnd());
  return `${lines.join('\n')}\n`;
}

/** A one-line progress bar per label, redrawn in place on a TTY and silent elsewhere. */
export class ProgressBars {
  readonly #stream: NodeJS.WriteStream;
  readonly #enabled: boolean;
  readonly #bars = new Map<string, { done: number; total: number | undefined; note: string }>();
  #drawnLines = 0;
  #lastDraw = 0;

  /** Bars are drawn only when `enabled` (a TTY, not `--json`). */
  constructor(stream: NodeJS.WriteStream, enabled: boolean) {
    this.#stream = stream;
    this.#enabled = enabled;
  }

  /** Sets a bar's state; `total` undefined draws a counter without a bar. */
  update(label: string, done: number, total: number | undefined, note = ''): void {
    this.#bars.set(label, { done, total, note });
    const now = Date.now();
    if (now - this.#lastDraw >= 80 || (total !== undefined && done >= total)) {
      this.#lastDraw = now;
      this.#draw();
    }
  }

  /** Draws the final state and leaves the bars on screen. */
  finish(): void {
    this.#draw();
    this.#drawnLines = 0;
  }

  #draw(): void {
    if (!this.#enabled) return;
    const width = 30;
    const lines = [...this.#bars].map(([label, { done, total, note }]) => {
      if (total === undefined || total === 0) return `${label.padEnd(16)} ${String(done).padStart(8)} ${note}`;
      const filled = Math.min(width, Math.round((done / total) * width));
      return `${label.padEnd(16)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${note}`;
    });
    const up = this.#drawnLines > 0 ? `\u001b[${this.#drawnLines}F` : '';
    this.#stream.write(`${up}${lines.map((l) => `\u001b[2K${l}`).join('\n')}\n`);
    this.#drawnLines = lines.length;
  }
}
