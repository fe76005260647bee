/** Shared bench plumbing: a device, JSON lines on stdout, the machine named in each line. */
import os from 'node:os';
import { requestNodeDevice } from '../src/node/device-node.js';
import type { DlgDevice } from '../src/gpu/device.js';

export { timeGpu, timeWall, median } from '../src/gpu/timing.js';

export async function benchDevice(): Promise<DlgDevice> {
  return requestNodeDevice();
}

export function machine(): { cpu: string; cores: number; node: string } {
  return { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, node: process.version };
}

/** Prints one JSON line: {"bench": name, ...fields}. */
export function emit(bench: string, fields: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ bench, ...fields }) + '\n');
}

/** Parses `--name value` style flags for benches (numbers where they look like numbers). */
export function benchArgs(argv = process.argv.slice(2)): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const key = a.slice(2);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) out[key] = true;
    else {
      out[key] = /^-?\d+(\.\d+)?(e-?\d+)?$/i.test(next) ? Number(next) : next;
      i++;
    }
  }
  return out;
}
