/**
 * What every `dlg` command shares: exit codes (2 for usage or input errors, 1 for runtime
 * failures), option parsers that name the flag, device choice, progress bars.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import type { DlgDevice } from '../gpu/device.js';
import { requestNodeDevice } from '../node/device-node.js';
import { DlgInputError, DlgRuntimeError } from '../core/errors.js';

export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;

/** Wraps a command action: maps errors to exit codes and a one-line message on stderr. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void> | void): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      if (err instanceof DlgInputError) {
        process.stderr.write(`dlg: error: ${err.message}\n`);
        process.exitCode = EXIT_USAGE;
      } else if (err instanceof DlgRuntimeError) {
        process.stderr.write(`dlg: ${err.message}\n`);
        process.exitCode = EXIT_RUNTIME;
      } else {
        process.stderr.write(`dlg: unexpected failure: ${(err as Error)?.stack ?? String(err)}\n`);
        process.exitCode = EXIT_RUNTIME;
      }
    }
  };
}

/** Parses a flag as an integer in [min, max]; commander reports the flag name on failure. */
export function intArg(min = 1, max = Number.MAX_SAFE_INTEGER): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!/^[-+]?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected an integer in [${min}, ${max}], found ${JSON.stringify(v)}`);
    }
    return n;
  };
}

/** Parses a flag as a finite number in (lo, hi] or [lo, hi]. */
export function numArg(lo = -Infinity, hi = Infinity, loOpen = false): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || (loOpen ? n <= lo : n < lo) || n > hi) {
      const range = `${loOpen ? '(' : '['}${lo}, ${hi}]`;
      throw new InvalidArgumentError(`expected a finite number in ${range}, found ${JSON.stringify(v)}`);
    }
    return n;
  };
}

export type Backend = 'webgpu' | 'cpu';

export function addBackendOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--backend <backend>', 'webgpu, or cpu for the float64 reference (never chosen silently)').choices(['webgpu', 'cpu']).default('webgpu'))
    .option('--adapter <name>', 'WebGPU adapter name as Dawn lists it (or env DLG_ADAPTER)');
}

/** Opens the WebGPU device for a command; the caller destroys it. */
export async function openDevice(opts: { adapter?: string }): Promise<DlgDevice> {
  return requestNodeDevice({
    adapter: opts.adapter,
    onLost: (info) => {
      process.stderr.write(`dlg: GPU device lost (${info.reason}): ${info.message}\n`);
      process.exitCode = EXIT_RUNTIME;
    },
  });
}

/** A progress bar on stderr when it is a TTY; a no-op otherwise. */
export function progressBar(label: string, total: number): { update(v: number, info?: string): void; stop(): void } {
  if (!process.stderr.isTTY) return { update() {}, stop() {} };
  const bar = new SingleBar(
    { format: `${label} [{bar}] {percentage}% | {value}/{total} | {info}`, stream: process.stderr, hideCursor: true, clearOnComplete: true },
    Presets.shades_classic,
  );
  bar.start(total, 0, { info: '' });
  return { update: (v, info = '') => bar.update(v, { info }), stop: () => bar.stop() };
}

/** A warning on stderr (never on stdout, which may carry JSON). */
export function warn(message: string): void {
  process.stderr.write(`dlg: warning: ${message}\n`);
}

/** Prints `value` as JSON on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + '\n');
}

export { DlgInputError, DlgRuntimeError };
