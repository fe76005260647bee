// Runs a TypeScript entry (bench or script): bundles it with esbuild (WGSL as text, packages
// external) into a temp file next to node_modules, then runs it with the given arguments.
import { build } from 'esbuild';
import { nodeExternals } from './node-externals.mjs';
import { mkdirSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { runQuiet } from './quiet-dawn.mjs';

const [entry, ...args] = process.argv.slice(2);
if (!entry) {
  process.stderr.write('usage: node scripts/run-ts.mjs <file.ts> [args...]\n');
  process.exit(2);
}
mkdirSync('dist/run', { recursive: true });
const outfile = join('dist/run', `${basename(entry).replace(/\.ts$/, '')}.${process.pid}.mjs`);
await build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  external: nodeExternals,
  loader: { '.wgsl': 'text' },
  sourcemap: 'inline',
  logLevel: 'warning',
});
// Dawn's adapter-limit notices are filtered out, as in the dlg launcher.
const code = await runQuiet(['--enable-source-maps', outfile, ...args]);
rmSync(outfile, { force: true });
process.exit(code);
