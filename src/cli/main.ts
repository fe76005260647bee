/** `dlg`: the command-line entry. Each command lives in its own file and registers itself here. */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { installSignalCleanup, setStrict } from '../node/io.js';
import { EXIT_USAGE } from './common.js';
import { registerSimulate } from './simulate.js';
import { registerEval } from './eval.js';
import { registerDiagnose } from './diagnose.js';
import { registerStudy } from './study.js';
import { registerAttack } from './attack.js';
import { registerSurface } from './surface.js';
import { registerDemo } from './demo.js';
import { registerDefend } from './defend.js';

/** The package version (package.json sits two folders above dist/node/cli.js and src/cli/main.ts). */
function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

// SIGINT/SIGTERM remove the temp files of unfinished outputs, then exit 130/143.
installSignalCleanup();

const program = new Command();
program
  .name('dlg')
  .version(version(), '-V, --version', 'print the version')
  .option('--strict', 'refuse scenario files with unknown keys (default: warn on stderr)')
  .hook('preAction', (cmd) => setStrict(Boolean(cmd.opts().strict)))
  .showSuggestionAfterError(true)
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
registerDefend(program);

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
