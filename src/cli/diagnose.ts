/**
 * `dlg diagnose scenario.json`: identifiability (rank of the Jacobian of the shared gradient) and
 * flatness (eigenvalues of the Hessian 2JᵀJ) at the scenario's true inputs.
 */
import type { Command } from 'commander';
import { type Diagnosis, PREDICTION_EPSILON, diagnose } from '../diagnose.js';
import { readScenarioFile } from '../io.js';
import { action, printJson } from './common.js';

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
        const d = diagnose(readScenarioFile(scenarioPath));
        if (flags.json) printJson(diagnosisJson(d));
        else process.stdout.write(diagnosisTable(d));
      }),
    );
}
