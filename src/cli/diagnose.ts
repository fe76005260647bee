/**
 * `dlg diagnose scenario.json`: identifiability (rank of the Jacobian of the shared gradient) and
 * flatness (eigenvalues of the Hessian 2JᵀJ) at the scenario's true inputs.
 */
import type { Command } from 'commander';
import { type Diagnosis, PREDICTION_EPSILON, diagnose, diagnoseCost } from '../analysis/diagnose.js';
import { checkMemory, readScenarioFile } from '../node/io.js';
import { formatBytes } from '../surface/surface.js';
import { action, printJson, progressBar } from './common.js';

const SHOWN = 12;

function fmt(v: number): string {
  return Number.isFinite(v) ? v.toExponential(4) : String(v);
}

/** Finite numbers stay; ±∞ (κ with rank 0) become null, as JSON has no infinity. */
export function diagnosisJson(d: Diagnosis): unknown {
  return JSON.parse(JSON.stringify(d, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)));
}

export function diagnosisTable(d: Diagnosis): string {
  const { rows, cols, rank, threshold, singularValues: sv } = d.jacobian;
  const h = d.hessian;
  const list = (xs: number[]) => xs.slice(0, SHOWN).map(fmt).join(' ') + (xs.length > SHOWN ? ` … (${xs.length - SHOWN} more, see --json)` : '');
  const verdict =
    d.solutionDim === 0
      ? 'locally identifiable (isolated solution, up to swapping rows with equal labels)'
      : `NOT identifiable: a ${d.solutionDim}-dimensional family of inputs gives the same gradient`;
  const lines = [
    `scenario B=${d.B}, D=${d.D}, K=${d.K}: ${cols} unknowns (B·D), ${rows} equations (D·K+K)`,
    `counting bound B·D ≤ D·K+K: ${d.identifiableBound ? 'holds' : 'fails (more unknowns than equations)'}`,
    '',
    'Identifiability: Jacobian J = ∂(∇W, ∇b)/∂x at the truth',
    `  size ${rows}×${cols}, rank ${rank} (σ ≤ ${fmt(threshold)} counts as 0)`,
    `  singular values: ${list(sv)}`,
    `  solution set dimension B·D − rank = ${d.solutionDim}: ${verdict}`,
    '',
    'Flatness: Hessian ∇²L_r = 2JᵀJ at the truth',
    `  eigenvalues: ${list(h.eigenvalues)}`,
    `  largest ${fmt(h.largest)}, smallest non-zero ${fmt(h.smallestNonZero)}, condition number κ = ${fmt(h.conditionNumber)}`,
    `  gradient descent needs about κ·ln(1/ε) = ${Number.isFinite(d.predictedIterations) ? d.predictedIterations : '∞'} iterations (ε = ${PREDICTION_EPSILON})`,
    '',
    'Leakage under small Gaussian noise on the gradient (σ per entry; docs/defences.md)',
    `  the attack's rel. err. ≈ ${fmt(d.noise.relErrPerSigma)}·σ, or ${fmt(d.noise.relErrPerRelSigma)}·rel with σ = rel·RMS (RMS ${fmt(d.noise.gradientRms)})`,
    `  from the ${d.noise.jacobian} Jacobian: ${d.noise.why}`,
    ...(d.noise.terms
      ? [`  E‖δx‖²/σ² = ${fmt(d.noise.errorSqPerVariance)} = ${fmt(d.noise.terms.inSubspace)} (in the subspace) + ${fmt(d.noise.terms.tilt)} (tilt) + ${fmt(d.noise.terms.coupling)} (coupling); full least squares Σ1/σᵢ²(J) = ${fmt(d.noise.full.errorSqPerVariance)} (rel. err. ${fmt(d.noise.full.relErrPerRelSigma)}·rel)`]
      : []),
    ...(d.noise.identifiable ? [] : ['  not identifiable: along the solution set the error is not bounded by the noise; the figure covers the other directions']),
  ];
  return lines.join('\n') + '\n';
}

export function registerDiagnose(program: Command): void {
  program
    .command('diagnose')
    .description('Identifiability (rank of ∂(∇W,∇b)/∂x) and flatness (Hessian eigenvalues, condition number) at the true inputs.')
    .argument('<scenario>', 'dlg-scenario/1 file with "inputs" (the truth)')
    .option('--json', 'print the full diagnosis as JSON on stdout (infinite values as null)')
    .action(
      action((scenarioPath: string, flags: { json?: boolean }) => {
        const s = readScenarioFile(scenarioPath);
        const cost = diagnoseCost(s.B, s.D, s.K);
        checkMemory('scenario', `B=${s.B}, D=${s.D}, K=${s.K}`, { bytes: cost.bytes, largestArray: cost.n * cost.n, what: `the ${cost.n}×${cost.n} Gram matrix of the Jacobian and its eigen-decomposition` });
        // Long work says so up front, and shows progress (a bar on a terminal, a line per 10% otherwise).
        let onProgress: ((f: number) => void) | undefined;
        let stop = () => {};
        if (cost.seconds > 5) {
          const eta = cost.seconds < 120 ? `${Math.round(cost.seconds)} s` : `${Math.round(cost.seconds / 60)} min`;
          process.stderr.write(`diagnose: eigen-decomposition of a ${cost.n}×${cost.n} matrix (${formatBytes(cost.bytes)}), about ${eta} on one core; Ctrl-C stops it\n`);
          if (process.stderr.isTTY) {
            const bar = progressBar('diagnose', 100);
            onProgress = (f) => bar.update(Math.round(100 * f));
            stop = () => bar.stop();
          } else {
            let shown = 0;
            onProgress = (f) => {
              if (f * 10 >= shown + 1) process.stderr.write(`diagnose: ${(shown = Math.floor(f * 10)) * 10}%\n`);
            };
          }
        }
        let d: Diagnosis;
        try {
          d = diagnose(s, { onProgress });
        } finally {
          stop();
        }
        if (flags.json) printJson(diagnosisJson(d));
        else process.stdout.write(diagnosisTable(d));
      }),
    );
}
