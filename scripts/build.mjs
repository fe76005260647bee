// Builds the Node entry + CLI (dist/node) and the browser bundle (dist/browser) with esbuild.
import { build } from 'esbuild';
import { nodeExternals } from './node-externals.mjs';
import { fileURLToPath } from 'node:url';

// Paths are the repository's, from whatever folder this runs in.
const root = fileURLToPath(new URL('..', import.meta.url));
const common = { absWorkingDir: root, bundle: true, format: 'esm', loader: { '.wgsl': 'text' }, sourcemap: true, logLevel: 'warning' };

await build({
  ...common,
  platform: 'node',
  target: 'node20',
  external: nodeExternals,
  entryPoints: { index: 'src/node.ts', cli: 'src/cli/main.ts' },
  outdir: 'dist/node',
});

await build({
  ...common,
  platform: 'browser',
  target: 'es2022',
  entryPoints: { dlg: 'src/index.ts' },
  outdir: 'dist/browser',
});
