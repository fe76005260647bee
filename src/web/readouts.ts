/**
 * The explorer's readouts: number formatting, what a defence did to the gradient, and the restarts'
 * median loss for the loss curve.
 */
import { analyseScenario } from '../analysis/reduce.js';
import { gradientNormSq, matchL2 } from '../core/model.js';
import type { Scenario } from '../core/scenario.js';

export function fmt(x: number): string {
  return Number.isFinite(x) ? x.toExponential(3) : String(x);
}

/** What the defence did to the gradient (the readout under the Defence controls). */
export interface DefenceReadout {
  label: string;
  /** ‖g̃ − g‖ / ‖g‖ over (∇W, ∇b). */
  relChange: number;
  /** ‖g̃‖² = ‖∇W̃‖² + ‖∇b̃‖² (the attack's tolerance scale). */
  gnorm2: number;
  /** L_r at the true inputs against the defended gradient, float64 (0 up to rounding when undefended). */
  truthLoss: number;
  regime: string;
  /** Whether lm (the page's default) attacks the reduced problem here. */
  reduced: boolean;
  /** ‖(I − VVᵀ)∇W̃‖², the part of ∇W̃ outside the B-dimensional subspace (reduced only), and its share of ‖∇W̃‖². */
  outOfSubspace: number | null;
  outOfSubspaceShare: number | null;
}

/** What a defence did: the relative change of the gradient, L_r at the truth, and the part outside the subspace. */
export function describeDefence(base: Scenario, defended: Scenario, label: string, withSubspace: boolean): DefenceReadout {
  let dd = 0;
  const g = base.gradient;
  const h = defended.gradient;
  for (let i = 0; i < g.W.length; i++) dd += (h.W[i] - g.W[i]) ** 2;
  for (let i = 0; i < g.b.length; i++) dd += (h.b[i] - g.b[i]) ** 2;
  const g2 = gradientNormSq(base.gradient);
  const truthLoss = defended.inputs ? matchL2(defended, defended.gradient, defended.inputs).loss : NaN;
  let regime = withSubspace ? '?' : '(computing…)';
  let reduced = false;
  let outOfSubspace: number | null = null;
  if (withSubspace) {
    try {
      const { info } = analyseScenario(defended, 'auto');
      regime = info.regime;
      reduced = info.reduced;
      outOfSubspace = info.outOfSubspaceEnergy ?? null;
    } catch {
      // The SVD of a gradient pruned or quantised to zero: no regime to report.
    }
  }
  const w2 = h.W.reduce((a, x) => a + x * x, 0);
  return {
    label,
    relChange: g2 > 0 ? Math.sqrt(dd / g2) : NaN,
    gnorm2: gradientNormSq(defended.gradient),
    truthLoss,
    regime,
    reduced,
    outOfSubspace,
    outOfSubspaceShare: outOfSubspace !== null && w2 > 0 ? outOfSubspace / w2 : null,
  };
}

export function medianOf(a: Float32Array): number {
  const s = Array.from(a).filter((x) => !Number.isNaN(x)).sort((x, y) => x - y);
  if (s.length === 0) return NaN;
  return s[s.length >> 1];
}
