// The packages a Node bundle leaves to node_modules: every dependency except those that must run in
// import order with our own code. webgpu-utils names Float16Array when it loads, which Node 20 lacks;
// src/gpu/float16.ts installs a polyfill first, and that order only holds when both are bundled.
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const BUNDLED = new Set(['webgpu-utils']);
export const nodeExternals = [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.devDependencies ?? {})]
  .filter((name) => !BUNDLED.has(name))
  .flatMap((name) => [name, `${name}/*`]);
