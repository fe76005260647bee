/** `dlg defend scenario.json --defence prune:0.3 --seed 1 --out defended.json`: applies defences to a scenario's shared gradient. */
import { type Command, Option } from 'commander';
import { DEFENCE_SYNTAX, defenceLabel, defendScenario, gradientRms, parseDefenceSpecs } from '../core/defence.js';
import { checkDistinctPaths, checkOutputPath, readScenarioFile, writeScenarioFile } from '../node/io.js';
import { action, intArg, printJson } from './common.js';

/** Collects a repeatable flag. */
export function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

export const DEFENCE_HELP = `a defence of the shared gradient, repeatable (applied in the order given): ${DEFENCE_SYNTAX}`;

export function registerDefend(program: Command): void {
  program
    .command('defend')
    .description('Apply defences (noise, pruning, quantisation, clipping, DP-SGD) to a scenario\'s shared gradient; the file records them (docs/defences.md).')
    .argument('<scenario>', 'dlg-scenario/1 file')
    .addOption(new Option('--defence <spec>', `${DEFENCE_HELP} (required)`).argParser(collect).makeOptionMandatory())
    .option('--seed <S>', 'seed of the random defences; the i-th --defence records seed S + i', intArg(0, 0xffffffff), 0)
    .addOption(new Option('--out <file>', 'defended scenario to write (atomically; never the input) (required)').makeOptionMandatory())
    .option('--json', 'print a JSON summary on stdout')
    .action(
      action((scenarioPath: string, f: { defence: string[]; seed: number; out: string; json?: boolean }) => {
        const ds = parseDefenceSpecs(f.defence, f.seed);
        checkOutputPath('--out', f.out);
        checkDistinctPaths([{ field: 'scenario', path: scenarioPath, role: 'input' }, { field: '--out', path: f.out, role: 'output' }]);
        const s = readScenarioFile(scenarioPath);
        const d = defendScenario(s, ds);
        writeScenarioFile(f.out, d);
        const summary = { out: f.out, defence: d.defence, rmsBefore: gradientRms(s.gradient), rmsAfter: gradientRms(d.gradient) };
        if (f.json) return printJson(summary);
        process.stdout.write(
          `wrote ${f.out}\n  defences   ${(d.defence ?? []).map(defenceLabel).join(' → ')}\n  RMS        ${summary.rmsBefore.toExponential(4)} → ${summary.rmsAfter.toExponential(4)}\n`,
        );
      }),
    );
}
