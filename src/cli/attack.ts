/**
 * `dlg attack scenario.json --out result.json`: the regime first (planAttack: reduce where B ≤ K, say
 * where x is not identifiable), then P restarts side by side (lm by default; on the GPU, or the
 * float64 CPU engine), label inference, analytic recovery at B = 1, honest metrics, a PNG for image
 * scenarios. Every input is checked before any work starts; the result
 * file is written atomically, and never on failure.
 */
import { type Command, Option } from 'commander';
import { ANALYTIC_B_EXPLANATION } from '../analysis/analytic.js';
import { ATTACK_DEFAULTS, type AttackResult, DEFAULT_LR, LM_DEFAULTS, attack, planAttack, validateAttackOptions } from '../attack/attack.js';
import { writeDigitsPng } from '../node/digits-png.js';
import { checkDistinctPaths, checkWritable, readScenarioFile, writeJsonAtomic } from '../node/io.js';
import { imageSide } from '../analysis/matching.js';
import { DlgInputError, action, addBackendOptions, intArg, numArg, openDevice, printJson, progressBar } from './common.js';

interface AttackFlags {
  out?: string;
  restarts?: number;
  iterations?: number;
  optimizer: 'auto' | 'gd' | 'adam' | 'lbfgs' | 'lm';
  reduce: 'auto' | 'on' | 'off';
  engine: 'auto' | 'device' | 'host';
  lr?: number;
  init: 'auto' | 'gradient' | 'normal' | 'uniform';
  initScale: number;
  seed: number;
  tol: number;
  loss: 'l2' | 'cosine';
  labels: 'known' | 'infer';
  method: 'optimize' | 'analytic';
  trajectory: number;
  readbackEvery?: number;
  maxLabelings: number;
  polish: number;
  stopAfter?: number;
  png?: string;
  backend: 'webgpu' | 'cpu';
  adapter?: string;
  json?: boolean;
}

const fmt = (v: number | null | undefined): string => (typeof v === 'number' && Number.isFinite(v) ? v.toExponential(3) : String(v));

/** Rows of the reconstruction put in the truth's order (assignment[i] = true row of row i). */
function alignedToTruth(r: AttackResult): number[] {
  const B = r.reconstruction.length;
  const D = r.reconstruction[0].length;
  const out = new Array<number>(B * D);
  const assign = r.metrics?.assignment ?? r.reconstruction.map((_, i) => i);
  r.reconstruction.forEach((row, i) => row.forEach((v, d) => (out[assign[i] * D + d] = v)));
  return out;
}

function summary(r: AttackResult): string {
  const g = r.regime;
  const lines = [
    `regime: ${g.regime}${g.identifiable ? '' : ` (identifiable: false, exact solutions form a manifold of dimension ${g.solutionDim ?? `≥ ${g.manifoldDim}`})`}; ${g.unknowns} unknowns, rank ∇W ${g.rank}`,
    `  ${g.summary}`,
    `attack (${r.method}${r.optimizer ? ` ${r.optimizer}` : ''}, ${r.backend}: ${r.adapter}, kernel ${r.engine.kernel}): ${r.iterations} iterations, ${(r.wallTimeMs / 1000).toFixed(2)} s, stopped by ${r.stoppedBy}` +
      (r.bestRestart ? `; best restart: ${r.bestRestart.iterations} iterations${r.bestRestart.lambda !== undefined ? `, λ ${fmt(r.bestRestart.lambda)}` : ''}` : ''),
    `restarts ${r.restarts.count}: converged ${r.restarts.counts.converged}, stalled ${r.restarts.counts.stalled}, non-finite ${r.restarts.counts.nonFinite}`,
    `best L_r ${fmt(r.loss)}; restart losses min ${fmt(r.restarts.quantiles.min)} median ${fmt(r.restarts.quantiles.median)} max ${fmt(r.restarts.quantiles.max)}`,
  ];
  if (r.polish) {
    const i = r.polish.chosen;
    lines.push(`float64 ${r.polish.method === 'lm' ? 'LM' : 'L-BFGS'} polish of ${r.polish.restarts.length} restarts (the best of each basin): chosen loss ${fmt(r.polish.lossBefore[i])} → ${fmt(r.polish.lossAfter[i])}`);
    if (r.polish.ambiguous) {
      const truth = r.polish.truthAmongExact === undefined ? '' : r.polish.truthAmongExact ? '; the truth is one of them' : '; the truth is not among them';
      lines.push(`ambiguous: ${r.polish.exactSolutions.length} distinct inputs fit the gradient exactly (polish.exactSolutions); the gradient does not single one out${truth}`);
    }
  }
  if (r.labelInference) lines.push(`labels inferred: ${r.labelInference.summary}`);
  if (r.metrics) {
    lines.push(
      `relative error ${fmt(r.metrics.relativeError)}, MSE ${fmt(r.metrics.mse)}` +
        (r.metrics.psnr !== undefined ? `, PSNR ${r.metrics.psnr.toFixed(1)} dB` : '') +
        ` → ${r.metrics.success ? 'SUCCESS' : 'failure'} (threshold 1e-3); restarts that succeeded: ${((r.restarts.successFraction ?? 0) * 100).toFixed(1)}%`,
    );
  }
  return lines.join('\n') + '\n';
}

export function registerAttack(program: Command): void {
  const cmd = program
    .command('attack')
    .description('Reconstruct the victim\'s inputs from its shared gradient: restarts side by side, Levenberg–Marquardt by default, in the gradient\'s own subspace where B ≤ K (or --method analytic at B=1).')
    .argument('<scenario>', 'dlg-scenario/1 file (with "inputs" for metrics)')
    .option('--out <file>', 'write the result JSON here (atomically)')
    .option('--restarts <P>', `restarts per candidate labelling (default ${LM_DEFAULTS.restarts} for lm, ${ATTACK_DEFAULTS.restarts} otherwise)`, intArg(1, 1 << 20))
    .option('--iterations <N>', `iteration budget (default ${LM_DEFAULTS.iterations} for lm, ${ATTACK_DEFAULTS.iterations} otherwise)`, intArg(1, 100_000_000))
    .addOption(
      new Option('--optimizer <name>', 'auto (lm where the problem is reduced or direct, else adam), lm (Levenberg–Marquardt), gd (momentum 0.9), adam, or lbfgs (history 5, backtracking line search)')
        .choices(['auto', 'lm', 'gd', 'adam', 'lbfgs'])
        .default('auto'),
    )
    .addOption(
      new Option('--engine <where>', 'with the webgpu backend: auto (lm on the host float64 engine on CPU adapters such as lavapipe, the device otherwise), device (force the WGSL kernels), host')
        .choices(['auto', 'device', 'host'])
        .default('auto'),
    )
    .addOption(new Option('--reduce <mode>', 'subspace reduction x = C·Vᵀ (B² unknowns) where B ≤ K: auto, on (error where it does not hold), off (the raw problem, as DLG)').choices(['auto', 'on', 'off']).default('auto'))
    .option('--lr <rate>', `learning rate (default adam ${DEFAULT_LR.adam}, lbfgs ${DEFAULT_LR.lbfgs}, gd ${DEFAULT_LR.gd} relative to ‖∇W‖²+‖∇b‖²)`, numArg(0, Infinity, true))
    .addOption(
      new Option('--init <dist>', "initial x′: auto (gradient for lm, normal otherwise), gradient (N(0,σ²), σ from ‖∇W‖/‖∇b‖, spread over a decade across restarts), normal N(0,s²) or uniform U(−s,s)")
        .choices(['auto', 'gradient', 'normal', 'uniform'])
        .default('auto'),
    )
    .option('--init-scale <s>', 'scale s of the initial x′', numArg(0, Infinity, true), 1)
    .option('--seed <n>', 'seed of the initial points', intArg(0, 0xffffffff), 0)
    .option('--tol <rel>', 'stop a restart when L_r ≤ tol·(‖∇W‖²+‖∇b‖²) (cosine: L ≤ tol)', numArg(0, Infinity, true), 1e-10)
    .addOption(new Option('--loss <kind>', 'gradient matching loss: l2 (DLG) or cosine (Geiping et al. 2020)').choices(['l2', 'cosine']).default('l2'))
    .addOption(new Option('--labels <mode>', 'known (from the scenario) or infer (from the sign/size of ∇b)').choices(['known', 'infer']).default('known'))
    .addOption(new Option('--method <m>', 'optimize, or analytic (exact, B=1 only)').choices(['optimize', 'analytic']).default('optimize'))
    .option('--trajectory <k>', 'save the best restart\'s loss and x′ every k iterations (0 = off)', intArg(0, 100_000_000), 0)
    .option('--readback-every <n>', `read the status back every n iterations (progress, early stop; default ${LM_DEFAULTS.readbackEvery} for lm, ${ATTACK_DEFAULTS.readbackEvery} otherwise)`, intArg(1, 100_000_000))
    .option('--max-labelings <n>', 'with --labels infer: the most candidate labellings to attack', intArg(1, 4096), 16)
    .option('--polish <n>', 'refine the best n restarts (one per basin) on the host with float64 Levenberg–Marquardt (0 = off)', intArg(0, 4096), 4)
    .option('--stop-after <n>', `stop once n restarts have converged (default for lm: a quarter of the restarts; otherwise 0 = off: run every restart to the end)`, intArg(0, 1 << 20))
    .option('--png <file>', 'PNG of true vs reconstructed images (default for image scenarios: next to --out)')
    .option('--json', 'print the result JSON on stdout');
  addBackendOptions(cmd).action(
    action(async (scenarioPath: string, f: AttackFlags) => {
      const scenario = readScenarioFile(scenarioPath);
      const opts = validateAttackOptions({
        restarts: f.restarts,
        iterations: f.iterations,
        optimizer: f.optimizer,
        reduce: f.reduce,
        engine: f.engine,
        lr: f.lr,
        init: f.init,
        initScale: f.initScale,
        seed: f.seed,
        tol: f.tol,
        loss: f.loss,
        labels: f.labels,
        method: f.method,
        trajectory: f.trajectory,
        readbackEvery: f.readbackEvery,
        maxLabelings: f.maxLabelings,
        polish: f.polish,
        stopAfter: f.stopAfter,
      });
      if (opts.method === 'analytic' && scenario.B !== 1) {
        throw new DlgInputError('--method', `'optimize' for B = ${scenario.B} (${ANALYTIC_B_EXPLANATION})`, `'analytic' with B = ${scenario.B}`);
      }
      if (f.out) checkWritable('--out', f.out);
      let png = f.png;
      if (png !== undefined && imageSide(scenario.D) === undefined) {
        throw new DlgInputError('--png', 'a scenario whose inputs are square images (D = s², s ≥ 8, e.g. 64 for digits)', `D = ${scenario.D}`);
      }
      if (png === undefined && f.out && imageSide(scenario.D) !== undefined) png = f.out.replace(/(\.json)?$/i, '.png');
      if (png) checkWritable('--png', png);
      checkDistinctPaths([{ field: 'scenario', path: scenarioPath, role: 'input' }, { field: '--out', path: f.out, role: 'output' }, { field: '--png', path: png, role: 'output' }]);

      // The plan checks what depends on the scenario (--reduce on, lm's caps) before any device work.
      const plan = planAttack(scenario, opts, null);
      const bar = progressBar('attack', plan.options.iterations);
      let result: AttackResult;
      if (opts.method === 'analytic' || f.backend === 'cpu') {
        try {
          result = await attack(null, scenario, { ...opts, onProgress: (p) => bar.update(p.iteration, `best ${fmt(p.bestLoss)}, converged ${p.converged}`) });
        } finally {
          bar.stop();
        }
      } else {
        const dlg = await openDevice({ adapter: f.adapter });
        try {
          result = await attack(
            dlg.device,
            scenario,
            { ...opts, onProgress: (p) => bar.update(p.iteration, `best ${fmt(p.bestLoss)}, converged ${p.converged}`) },
            dlg.adapterName,
          );
        } finally {
          bar.stop();
          dlg.destroy();
        }
      }
      if (f.out) writeJsonAtomic(f.out, result);
      if (png) writeDigitsPng(png, { B: scenario.B, D: scenario.D, reconstruction: alignedToTruth(result), truth: scenario.inputs });
      if (f.json) printJson(result);
      else process.stdout.write(summary(result) + (f.out ? `result: ${f.out}\n` : '') + (png ? `image: ${png}\n` : ''));
    }),
  );
}
