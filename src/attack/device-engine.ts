/**
 * The EngineHandle of a WGSL engine, shared by the first-order kernels (engine.ts) and lm (engine-lm.ts):
 * inputs, the run in whole dispatches, read-backs and teardown. Each engine supplies its buffers, how it
 * resets its optimizer state and how it records a run's dispatches.
 */
import { DlgInputError } from '../core/errors.js';
import { Readback } from '../gpu/gpu.js';
import { type EngineHandle, type EngineStatus, type ResolvedEngineOptions, checkInputs, checkIterations, decodeStatus, initialStatus } from './engine-cpu.js';

/**
 * The per-group block both WGSL engines read (their `grp` binding), as f32: y (B×K), G (D×K), g (K), tolAbs,
 * and with `withNorm` ‖(G, g)‖ (the first-order kernels' cosine loss). Returns the block and its stride.
 */
export function packGroups(o: ResolvedEngineOptions, withNorm: boolean): { data: Float32Array<ArrayBuffer>; stride: number } {
  const { B, D, K } = o;
  const stride = B * K + D * K + K + (withNorm ? 2 : 1);
  const data = new Float32Array(stride * o.groups.length);
  o.groups.forEach((g, i) => {
    const at = i * stride;
    data.set(g.y, at);
    data.set(g.target.W, at + B * K);
    data.set(g.target.b, at + B * K + D * K);
    data[at + B * K + D * K + K] = o.tolAbs[i];
    if (withNorm) {
      let tt = 0;
      for (const v of g.target.W) tt += v * v;
      for (const v of g.target.b) tt += v * v;
      data[at + B * K + D * K + K + 1] = Math.sqrt(tt);
    }
  });
  return { data, stride };
}

export interface DeviceEngineParts {
  device: GPUDevice;
  o: ResolvedEngineOptions;
  /** Label prefix of the encoders and the read-back buffer. */
  label: string;
  kernel: string;
  why: string;
  /** Unknowns per restart (B·D of the problem the engine runs). */
  unknowns: number;
  /** Current points, best points and the per-restart status records. */
  x: GPUBuffer;
  best: GPUBuffer;
  status: GPUBuffer;
  /** Iterations one full dispatch advances. */
  itersPerDispatch: number;
  /** Resets the optimizer state for new inputs (after x, best and status are written). */
  resetState(): void;
  /** Writes the iteration count of a short last dispatch (before it is recorded). */
  prepareRest(rest: number): void;
  /** Records `full` full dispatches, then one of `rest` iterations when rest > 0. */
  record(pass: GPUComputePassEncoder, full: number, rest: number): void;
  /** lm: each restart's λ, the first `total` floats of this buffer, read with the status. */
  lambda?: GPUBuffer;
  /** Every buffer the engine owns, destroyed with it. */
  owned: GPUBuffer[];
}

export function deviceEngine(e: DeviceEngineParts): EngineHandle {
  const { device, o, label } = e;
  const total = o.total;
  const readback = new Readback(device, `${label}.readback`);
  let hasInputs = false;
  let destroyed = false;
  const alive = (): void => {
    if (destroyed) throw new DlgInputError('engine', 'a live engine', 'one that was destroyed');
  };
  return {
    totalRestarts: total,
    kernel: e.kernel,
    why: e.why,
    setInputs(x0: ArrayLike<number>): void {
      alive();
      checkInputs(o, x0);
      const x = Float32Array.from(x0);
      device.queue.writeBuffer(e.x, 0, x);
      device.queue.writeBuffer(e.best, 0, x);
      device.queue.writeBuffer(e.status, 0, initialStatus(total));
      e.resetState();
      hasInputs = true;
    },
    run(iterations: number): void {
      alive();
      checkIterations(iterations);
      if (!hasInputs) throw new DlgInputError('x0', 'setInputs(x0) before run()', 'no inputs');
      if (iterations === 0) return;
      const full = Math.floor(iterations / e.itersPerDispatch);
      const rest = iterations - full * e.itersPerDispatch;
      if (rest > 0) e.prepareRest(rest);
      const enc = device.createCommandEncoder({ label: `${label}.runEncoder` });
      const pass = enc.beginComputePass({ label: `${label}.runPass` });
      e.record(pass, full, rest);
      pass.end();
      device.queue.submit([enc.finish()]);
    },
    async readStatus(): Promise<EngineStatus> {
      alive();
      if (!e.lambda) {
        const [buf] = await readback.read([{ buffer: e.status, size: total * 16 }]);
        return decodeStatus(buf, total);
      }
      const [buf, lam] = await readback.read([
        { buffer: e.status, size: total * 16 },
        { buffer: e.lambda, size: total * 4 },
      ]);
      return { ...decodeStatus(buf, total), lambda: new Float32Array(lam) };
    },
    async readBest(): Promise<Float32Array> {
      alive();
      const [buf] = await readback.read([{ buffer: e.best, size: total * e.unknowns * 4 }]);
      return new Float32Array(buf);
    },
    destroy(): void {
      if (destroyed) return;
      destroyed = true;
      readback.destroy();
      for (const b of e.owned) b.destroy();
    },
  };
}
