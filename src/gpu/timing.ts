/**
 * Opt-in GPU timing. With 'timestamp-query' on the device, kernel time comes from
 * timestamps written at the start and end of the encoded work; otherwise it is wall time
 * around queue.onSubmittedWorkDone(). Warm-up runs first; results are medians.
 */

export interface TimingResult {
  /** Median milliseconds per sample. */
  medianMs: number;
  samplesMs: number[];
  method: 'timestamp-query' | 'wall';
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export interface TimeGpuOptions {
  warmup?: number;
  samples?: number;
  /** Prefer timestamp-query when the device has it (default true). */
  timestamps?: boolean;
}

/**
 * Times `encode` (which records GPU work into the encoder, typically many dispatches).
 * With timestamps, `encode` receives timestampWrites for its first and last pass.
 */
export async function timeGpu(
  device: GPUDevice,
  encode: (encoder: GPUCommandEncoder, timestampWrites?: GPUComputePassTimestampWrites) => void,
  opts: TimeGpuOptions = {},
): Promise<TimingResult> {
  const warmup = opts.warmup ?? 2;
  const samples = opts.samples ?? 7;
  const useTs = (opts.timestamps ?? true) && device.features.has('timestamp-query');
  let querySet: GPUQuerySet | undefined;
  let resolve: GPUBuffer | undefined;
  let read: GPUBuffer | undefined;
  if (useTs) {
    querySet = device.createQuerySet({ label: 'timing.querySet', type: 'timestamp', count: 2 });
    resolve = device.createBuffer({ label: 'timing.resolve', size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    read = device.createBuffer({ label: 'timing.read', size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  }
  const out: number[] = [];
  try {
    for (let i = 0; i < warmup + samples; i++) {
      const enc = device.createCommandEncoder({ label: 'timing.encoder' });
      if (useTs && querySet && resolve && read) {
        // Timestamps bracket the whole sample: an empty pass before and after the work.
        const before = enc.beginComputePass({ label: 'timing.start', timestampWrites: { querySet, beginningOfPassWriteIndex: 0 } });
        before.end();
        encode(enc);
        const after = enc.beginComputePass({ label: 'timing.end', timestampWrites: { querySet, endOfPassWriteIndex: 1 } });
        after.end();
        enc.resolveQuerySet(querySet, 0, 2, resolve, 0);
        enc.copyBufferToBuffer(resolve, 0, read, 0, 16);
        device.queue.submit([enc.finish()]);
        await read.mapAsync(GPUMapMode.READ);
        const t = new BigUint64Array(read.getMappedRange().slice(0));
        read.unmap();
        if (i >= warmup) out.push(Number(t[1] - t[0]) / 1e6);
      } else {
        const t0 = performance.now();
        encode(enc);
        device.queue.submit([enc.finish()]);
        await device.queue.onSubmittedWorkDone();
        if (i >= warmup) out.push(performance.now() - t0);
      }
    }
  } finally {
    querySet?.destroy();
    resolve?.destroy();
    read?.destroy();
  }
  const method = useTs ? 'timestamp-query' : 'wall';
  // A timestamp pair that reads 0 (some drivers) falls back to nothing useful: report wall time then.
  if (useTs && out.every((v) => v <= 0)) return timeGpu(device, encode, { ...opts, timestamps: false });
  return { medianMs: median(out), samplesMs: out, method };
}

/** Wall time of an async or sync function, warm-up then median. */
export async function timeWall(fn: () => unknown, opts: { warmup?: number; samples?: number } = {}): Promise<TimingResult> {
  const warmup = opts.warmup ?? 1;
  const samples = opts.samples ?? 5;
  const out: number[] = [];
  for (let i = 0; i < warmup + samples; i++) {
    const t0 = performance.now();
    await fn();
    if (i >= warmup) out.push(performance.now() - t0);
  }
  return { medianMs: median(out), samplesMs: out, method: 'wall' };
}
