/**
 * `dlg eval`: L_r and ∇ₓ′L_r of a scenario at given fake inputs — the hook for cross-checking
 * against other frameworks (PyTorch, JAX) by hand.
 */
import type { Command } from 'commander';
import { DlgRuntimeError } from '../core/errors.js';
import { readJsonFile, readScenarioFile } from '../node/io.js';
import { matchL2Batched } from '../core/model.js';
import { createObjective } from '../objective/objective.js';
import { parseFakeBatches, type Scenario } from '../core/scenario.js';
import { type Backend, action, addBackendOptions, openDevice, printJson } from './common.js';

interface EvalFlags {
  fake: string;
  backend: Backend;
  adapter?: string;
  json?: boolean;
}

export interface EvalResult {
  P: number;
  loss: ArrayLike<number>; // P
  grad: ArrayLike<number>; // P·B·D
  device: string;
}

/** Evaluates the P fake batches x (P·B·D) on the chosen backend. */
export async function evaluateFakes(s: Scenario, x: Float64Array, P: number, flags: Pick<EvalFlags, 'backend' | 'adapter'>): Promise<EvalResult> {
  const layer = { B: s.B, D: s.D, K: s.K, W: s.W, b: s.b, y: s.y, reduction: s.reduction };
  if (flags.backend === 'cpu') {
    const r = matchL2Batched(layer, s.gradient, x, P);
    return { P, loss: r.loss, grad: r.grad, device: 'cpu (float64 reference)' };
  }
  const dlg = await openDevice({ adapter: flags.adapter });
  try {
    const obj = createObjective(dlg.device, { layer, target: s.gradient, P });
    try {
      obj.setInputs(x);
      const r = await obj.evaluate();
      return { P, loss: r.loss, grad: r.grad, device: dlg.adapterName };
    } finally {
      obj.destroy();
    }
  } finally {
    dlg.destroy();
  }
}

/** The --json shape: {"loss": [P], "gradient": [P][B][D]}. */
export function evalJson(r: EvalResult, B: number, D: number): { loss: number[]; gradient: number[][][] } {
  const gradient: number[][][] = [];
  for (let p = 0; p < r.P; p++) {
    const batch: number[][] = [];
    for (let n = 0; n < B; n++) {
      const row: number[] = [];
      for (let d = 0; d < D; d++) row.push(r.grad[(p * B + n) * D + d]);
      batch.push(row);
    }
    gradient.push(batch);
  }
  return { loss: Array.from(r.loss), gradient };
}

const TABLE_ROWS = 20;

function humanTable(s: Scenario, r: EvalResult): string {
  const BD = s.B * s.D;
  const lines = [
    `scenario B=${s.B}, D=${s.D}, K=${s.K} (${s.reduction}); ${r.P} fake batch${r.P === 1 ? '' : 'es'}; ${r.device}`,
    `${'batch'.padStart(8)}  ${'L_r'.padStart(12)}  ${'‖∇ₓ′L_r‖'.padStart(12)}`,
  ];
  for (let p = 0; p < Math.min(r.P, TABLE_ROWS); p++) {
    let acc = 0;
    for (let i = 0; i < BD; i++) acc += r.grad[p * BD + i] ** 2;
    lines.push(`${String(p).padStart(8)}  ${r.loss[p].toExponential(5).padStart(12)}  ${Math.sqrt(acc).toExponential(5).padStart(12)}`);
  }
  if (r.P > TABLE_ROWS) {
    let best = 0;
    for (let p = 1; p < r.P; p++) if (r.loss[p] < r.loss[best]) best = p;
    lines.push(`  … ${r.P - TABLE_ROWS} more (use --json for all); lowest L_r ${r.loss[best].toExponential(5)} at batch ${best}`);
  }
  return lines.join('\n') + '\n';
}

export function registerEval(program: Command): void {
  const cmd = program
    .command('eval')
    .description('Evaluate the gradient-matching loss L_r and its gradient ∇ₓ′L_r at fake inputs (a B×D or P×B×D JSON array).')
    .argument('<scenario>', 'dlg-scenario/1 file (see README)')
    .requiredOption('--fake <file>', 'JSON file with fake inputs: a B×D array, or a P×B×D array for P batches')
    .option('--json', 'print exactly {"loss": [P numbers], "gradient": [P][B][D]} on stdout');
  addBackendOptions(cmd).action(
    action(async (scenarioPath: string, flags: EvalFlags) => {
      const s = readScenarioFile(scenarioPath);
      const { P, x } = parseFakeBatches('fake', readJsonFile('--fake', flags.fake), s.B, s.D);
      const r = await evaluateFakes(s, x, P, flags);
      for (let p = 0; p < P; p++) {
        if (!Number.isFinite(r.loss[p])) throw new DlgRuntimeError(`L_r of fake batch ${p} is not finite (${r.loss[p]}) on ${r.device}`);
      }
      if (flags.json) printJson(evalJson(r, s.B, s.D));
      else process.stdout.write(humanTable(s, r));
    }),
  );
}
