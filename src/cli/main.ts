/** `dlg`: the command-line entry. Each command lives in its own file and registers itself here. */
import { Command, CommanderError } from 'commander';
import { EXIT_USAGE } from './common.js';
import { registerSimulate } from './simulate.js';
import { registerEval } from './eval.js';
import { registerDiagnose } from './diagnose.js';
import { registerStudy } from './study.js';
import { registerAttack } from './attack.js';
import { registerSurface } from './surface.js';
import { registerDemo } from './demo.js';

const program = new Command();
program
  .name('dlg')
  .description('Deep Leakage from Gradients on WebGPU: simulate a victim, attack its shared gradient, explain what leaks.')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

registerSimulate(program);
registerEval(program);
registerDiagnose(program);
registerStudy(program);
registerAttack(program);
registerSurface(program);
registerDemo(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // help and version exit 0; every usage error exits 2.
    process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE;
  } else {
    throw err;
  }
}
