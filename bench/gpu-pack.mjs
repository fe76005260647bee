// Packs the benches for a machine that has a GPU but no Node toolchain (the lent H100/H200):
// self-contained bundles in .devpack/bench, the native packages they load (dawn.node, resvg,
// the plot fonts), the shipped data and this machine's node binary (xz). bench/gpu-run.sh runs them.
//   node bench/gpu-pack.mjs            # then carry .devpack (and .gl, the Vulkan loader debs)
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

const out = '.devpack';
rmSync(join(out, 'bench'), { recursive: true, force: true });
rmSync(join(out, 'node_modules'), { recursive: true, force: true });
rmSync(join(out, 'study-prev'), { recursive: true, force: true }); // a fresh pack starts a fresh sweep
mkdirSync(join(out, 'bench'), { recursive: true });

const benches = ['objective', 'attack', 'attack-mid', 'attack-quality', 'surface', 'study'];
await build({
  entryPoints: Object.fromEntries(benches.map((b) => [b, `bench/${b}.ts`])),
  outdir: join(out, 'bench'),
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  // native addons stay packages; everything else is inlined
  external: ['webgpu', '@resvg/resvg-js'],
  loader: { '.wgsl': 'text' },
  // CommonJS dependencies call require() for Node built-ins
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  logLevel: 'warning',
});

const nm = join(out, 'node_modules');
for (const f of ['package.json', 'index.js', 'dist/linux-x64']) cpSync(join('node_modules/webgpu', f), join(nm, 'webgpu', f), { recursive: true });
for (const p of ['@resvg/resvg-js', '@resvg/resvg-js-linux-x64-gnu']) cpSync(join('node_modules', p), join(nm, p), { recursive: true });
// the two faces the plots use (src/node/plots.ts), not the whole 12 MB family
for (const f of ['package.json', 'ttf/DejaVuSans.ttf', 'ttf/DejaVuSans-Bold.ttf']) cpSync(join('node_modules/dejavu-fonts-ttf', f), join(nm, 'dejavu-fonts-ttf', f));
// dawn.node travels compressed too (the lent machine's transfer limit is 64 MiB); gpu-run.sh unpacks it
const dawn = join(nm, 'webgpu/dist/linux-x64/dawn.node');
execFileSync('xz', ['-T0', '-6', dawn]);
cpSync('data', join(out, 'data'), { recursive: true });

const nodeXz = join(out, 'node.xz');
if (!existsSync(nodeXz) || statSync(nodeXz).mtimeMs < statSync(process.execPath).mtimeMs) {
  execFileSync('sh', ['-c', `xz -T0 -6 -c "${process.execPath}" > "${nodeXz}.tmp" && mv "${nodeXz}.tmp" "${nodeXz}"`], { stdio: 'inherit' });
}
const size = execFileSync('du', ['-sh', out], { encoding: 'utf8' }).trim();
process.stdout.write(`packed ${size} (node ${process.version})\n`);
