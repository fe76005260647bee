/** `dlg simulate`: makes a victim scenario file from Gaussian noise, iris or digits. */
import { type Command, Option } from 'commander';
import { DATASET_INFO, DATASET_NAMES, type DatasetName, labelCounts, simulateScenario } from '../core/datasets.js';
import { loadDataset } from '../node/data-node.js';
import { DlgInputError } from '../core/errors.js';
import { checkOutputPath, checkScenarioSize, writeScenarioFile } from '../node/io.js';
import type { Reduction } from '../core/model.js';
import type { Scenario } from '../core/scenario.js';
import { action, intArg, numArg, printJson } from './common.js';
import { DEFENCE_HELP, collect } from './defend.js';
import { defenceLabel, defendScenario, parseDefenceSpecs } from '../core/defence.js';

interface SimulateFlags {
  dataset: DatasetName;
  batch: number;
  features?: number;
  outputs?: number;
  reduction: Reduction;
  biasScale: number;
  seed: number;
  out: string;
  json?: boolean;
  defence?: string[];
}

function norm(v: ArrayLike<number>): number {
  let acc = 0;
  for (let i = 0; i < v.length; i++) acc += v[i] * v[i];
  return Math.sqrt(acc);
}

export function simulateSummary(s: Scenario, flags: Pick<SimulateFlags, 'dataset' | 'seed' | 'biasScale' | 'out'>) {
  return {
    out: flags.out,
    dataset: flags.dataset,
    seed: flags.seed,
    reduction: s.reduction,
    biasScale: flags.biasScale,
    B: s.B,
    D: s.D,
    K: s.K,
    gradientNorm: { weights: norm(s.gradient.W), bias: norm(s.gradient.b) },
    labelCounts: labelCounts(s),
    ...(s.defence ? { defence: s.defence } : {}),
  };
}

export function registerSimulate(program: Command): void {
  program
    .command('simulate')
    .description('Make a victim scenario: draw a batch and a layer, compute the gradient the victim shares, write it as a dlg-scenario/1 file.')
    .addOption(new Option('--dataset <name>', 'where the batch comes from: gaussian (x ~ N(0,1), random 0/1 labels), iris (D=4, K=3) or digits (8×8 scaled to [0,1], D=64, K=10) (required)').choices(DATASET_NAMES).makeOptionMandatory())
    .addOption(new Option('--batch <B>', 'batch size B (rows drawn without replacement for iris/digits) (required)').argParser(intArg(1)).makeOptionMandatory())
    .option('--features <D>', 'input features D (gaussian only; default 1; iris has 4, digits 64)', intArg(1))
    .option('--outputs <K>', 'outputs K (gaussian only; default 1; iris has 3, digits 10)', intArg(1))
    .addOption(new Option('--reduction <r>', 'BCE reduction over the B·K terms').choices(['mean', 'sum']).default('mean'))
    .option('--bias-scale <s>', 'draw b ~ N(0, s²); 0 keeps b = 0', numArg(0), 0)
    .addOption(new Option('--seed <S>', 'RNG seed (integer in [0, 4294967295]); the same seed gives the same scenario in Node and browsers (required)').argParser(intArg(0, 0xffffffff)).makeOptionMandatory())
    .addOption(new Option('--out <file>', 'scenario file to write (atomically; never over a special file) (required)').makeOptionMandatory())
    .option('--defence <spec>', `${DEFENCE_HELP}; random ones draw from --seed + i`, collect)
    .option('--json', 'print a JSON summary on stdout instead of text')
    .action(
      action((flags: SimulateFlags) => {
        const { dataset } = flags;
        if (dataset !== 'gaussian') {
          const info = DATASET_INFO[dataset];
          if (flags.features !== undefined && flags.features !== info.D) {
            throw new DlgInputError('--features', `${info.D} or nothing (${dataset} has ${info.D} features)`, String(flags.features));
          }
          if (flags.outputs !== undefined && flags.outputs !== info.K) {
            throw new DlgInputError('--outputs', `${info.K} or nothing (${dataset} has ${info.K} classes)`, String(flags.outputs));
          }
        }
        const data = dataset === 'gaussian' ? undefined : loadDataset(dataset);
        if (data && flags.batch > data.labels.length) {
          throw new DlgInputError('--batch', `at most ${data.labels.length} (the rows in ${dataset})`, String(flags.batch));
        }
        const D = flags.features ?? (dataset === 'gaussian' ? 1 : DATASET_INFO[dataset].D);
        const K = flags.outputs ?? (dataset === 'gaussian' ? 1 : DATASET_INFO[dataset].K);
        checkScenarioSize('--batch, --features, --outputs', flags.batch, D, K);
        const defences = parseDefenceSpecs(flags.defence ?? [], flags.seed);
        checkOutputPath('--out', flags.out);
        const s0 = simulateScenario({
          dataset,
          B: flags.batch,
          D: flags.features,
          K: flags.outputs,
          seed: flags.seed,
          reduction: flags.reduction,
          biasScale: flags.biasScale,
          data,
        });
        const s = defendScenario(s0, defences);
        writeScenarioFile(flags.out, s);
        const summary = simulateSummary(s, flags);
        if (flags.json) {
          printJson(summary);
          return;
        }
        const g = summary.gradientNorm;
        process.stdout.write(
          [
            `wrote ${flags.out}`,
            `  dataset    ${dataset} (seed ${flags.seed}, reduction ${s.reduction}, bias ${flags.biasScale > 0 ? `~ N(0, ${flags.biasScale}²)` : '0'})`,
            `  shape      B=${s.B}, D=${s.D}, K=${s.K}`,
            `  ‖∇W‖       ${g.weights.toExponential(4)}`,
            `  ‖∇b‖       ${g.bias.toExponential(4)}`,
            `  labels     ${dataset === 'gaussian' ? 'ones per output' : 'rows per class'}: [${summary.labelCounts.join(', ')}]`,
            ...(s.defence ? [`  defences   ${s.defence.map(defenceLabel).join(' → ')} (‖∇W‖, ‖∇b‖ above are after them)`] : []),
            '',
          ].join('\n'),
        );
      }),
    );
}
