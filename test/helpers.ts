import { afterAll, beforeAll, expect } from 'vitest';
import type { DlgDevice } from '../src/gpu/device.js';
import { requestNodeDevice } from '../src/node/device-node.js';

/**
 * One real WebGPU device per test file. There is no skip path: with no adapter,
 * requestNodeDevice throws and every test in the file fails, as it must.
 */
export function useGpu(): () => GPUDevice {
  let dlg: DlgDevice | undefined;
  beforeAll(async () => {
    dlg = await requestNodeDevice();
  });
  afterAll(() => dlg?.destroy());
  return () => {
    if (!dlg) throw new Error('GPU device was not created (see the beforeAll error)');
    return dlg.device;
  };
}

export interface Tolerance {
  abs: number;
  rel: number;
}

/**
 * |a − e| ≤ abs + rel·|e| element-wise. NaN/Inf rule: a non-finite expected value must be matched
 * exactly (same NaN-ness or same infinity); a non-finite actual value against a finite expected fails.
 */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance, what = 'value'): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let worst = -1;
  let worstRatio = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (!Number.isFinite(e)) {
      if (Number.isNaN(e) ? !Number.isNaN(a) : a !== e) throw new Error(`${what}[${i}]: expected ${e}, got ${a}`);
      continue;
    }
    if (!Number.isFinite(a)) throw new Error(`${what}[${i}]: expected finite ${e}, got ${a}`);
    const ratio = Math.abs(a - e) / (tol.abs + tol.rel * Math.abs(e));
    if (ratio > worstRatio) {
      worstRatio = ratio;
      worst = i;
    }
  }
  if (worstRatio > 1) {
    throw new Error(
      `${what}[${worst}]: got ${actual[worst]}, expected ${expected[worst]} (|diff| = ${Math.abs(actual[worst] - expected[worst])}, allowed ${tol.abs} + ${tol.rel}·|e|)`,
    );
  }
}

/** Relative error ‖a − e‖₂ / ‖e‖₂ over the whole vector. */
export function relError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < expected.length; i++) {
    num += (actual[i] - expected[i]) ** 2;
    den += expected[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-300));
}
