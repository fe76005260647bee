/**
 * The source tree's layers (issue 13): src/ has one folder per layer, bottom to top, and imports only
 * point down. Parses the import/export statements of src/**\/*.ts (text only, no bundler) and checks
 * (a) no import cycles, (b) every import targets the same or a lower layer, (c) nothing Node-only
 * (src/node/, src/cli/, src/node.ts, node:* or a Node-only package) is reachable from the browser
 * entry src/index.ts or the explorer page src/web/main.ts, and every module under src/node/ is
 * Node-only for a reason. test/bundle.test.ts checks the same for the real esbuild bundles.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { posix } from 'node:path';
import { describe, expect, it } from 'vitest';

/** Bottom to top. A module may import its own layer or any layer below it, never above. */
const LAYERS = [
  'core', // model, scenario, datasets, rng, errors (validation), defence
  'analysis', // float64 numerics: labels, analytic, matching, diagnose, leakage, reduce, lm, linalg
  'gpu', // devices, GPU resources and adapter profile, timing
  'objective', // the gradient-matching objective on the GPU
  'attack', // engines (CPU, WGSL, lm), the run loop, the attack
  'surface', // planes, loss surfaces, basin census
  'study', // the convergence study's configuration and results (browser-safe; src/node/study.ts runs it)
  'view', // browser-safe presentation helpers (colour scales)
  'index', // src/index.ts: the browser-safe library entry
  'node', // everything that needs Node: dawn.node, files, PNG/plots, studies
  'node-entry', // src/node.ts: the Node library entry
  'app', // src/cli/ and src/web/: the two programs on top
] as const;
type Layer = (typeof LAYERS)[number];

/** Packages that only run in Node (or are only for PNG, plots or the CLI); as in test/bundle.test.ts. */
const NODE_ONLY_PACKAGES = ['webgpu', 'pngjs', 'cli-progress', 'commander', 'vega', 'vega-lite', '@resvg/resvg-js', 'dejavu-fonts-ttf'];

/**
 * Type-only cycles that are allowed (erased at compile time, so no runtime cycle). Each names a
 * pair in one layer whose types live in the other module; a new one fails the test.
 */
const ALLOWED_TYPE_CYCLES = [
  ['src/core/defence.ts', 'src/core/scenario.ts'], // defence takes a Scenario (type); scenario applies defences
];

interface Edge {
  to: string; // repo-relative path for a project module, else the bare specifier
  typeOnly: boolean;
  local: boolean;
}

function walk(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir)) {
    const p = posix.join(dir, e);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Removes block comments and whole-line // comments (enough for this code base's headers). */
function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
}

function parseImports(file: string): Edge[] {
  const text = stripComments(readFileSync(file, 'utf8'));
  const edges: Edge[] = [];
  const add = (spec: string, typeOnly: boolean) => {
    const local = spec.startsWith('.');
    let to = spec;
    if (local) {
      to = posix.normalize(posix.join(posix.dirname(file), spec));
      if (to.endsWith('.js')) to = to.slice(0, -3) + '.ts';
    }
    edges.push({ to, typeOnly, local });
  };
  // import/export … from '…' (named, default, namespace, type)
  for (const m of text.matchAll(/^\s*(import|export)\s+(type\s+)?([^;'"]*?)\s*from\s*['"]([^'"]+)['"]/gm)) {
    const clause = m[3];
    const braces = /^\{([\s\S]*)\}$/.exec(clause.trim());
    const allTypes = braces !== null && braces[1].split(',').map((s) => s.trim()).filter(Boolean).every((s) => s.startsWith('type '));
    add(m[4], m[2] !== undefined || allTypes);
  }
  for (const m of text.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm)) add(m[1], false); // side-effect import
  for (const m of text.matchAll(/\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g)) add(m[1], false); // dynamic import
  return edges;
}

function layerOf(file: string): Layer {
  if (file === 'src/index.ts') return 'index';
  if (file === 'src/node.ts') return 'node-entry';
  const dir = file.split('/')[1];
  if (dir === 'cli' || dir === 'web') return 'app';
  if ((LAYERS as readonly string[]).includes(dir) && !['index', 'node-entry', 'app'].includes(dir)) return dir as Layer;
  throw new Error(`${file}: not in a layer folder (src/{${LAYERS.join(',')}}/, src/cli/, src/web/) nor an entry`);
}

const isNodeOnlySpec = (spec: string): boolean =>
  spec.startsWith('node:') || builtinModules.includes(spec.split('/')[0]) || NODE_ONLY_PACKAGES.some((p) => spec === p || spec.startsWith(`${p}/`));
const isNodeOnlyFile = (file: string): boolean => file === 'src/node.ts' || file.startsWith('src/node/') || file.startsWith('src/cli/');

const files = walk('src');
const graph = new Map(files.map((f) => [f, parseImports(f)]));
const localEdges = (f: string, types: boolean) => graph.get(f)!.filter((e) => e.local && !e.to.endsWith('.wgsl') && (types || !e.typeOnly));

/** Cycles (as sorted module lists) of the graph, by Tarjan's strongly connected components. */
function cycles(types: boolean): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const { to: w } of localEdges(v, types)) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || localEdges(v, types).some((e) => e.to === v)) out.push(scc.sort());
    }
  };
  for (const f of files) if (!idx.has(f)) visit(f);
  return out;
}

function reachable(entry: string): Set<string> {
  const seen = new Set<string>([entry]);
  const todo = [entry];
  while (todo.length) for (const e of localEdges(todo.pop()!, false)) if (!seen.has(e.to)) (seen.add(e.to), todo.push(e.to));
  return seen;
}

describe('source layers', () => {
  it('parses the tree: every module is in a layer and every local import resolves', () => {
    expect(files.length).toBeGreaterThan(40);
    expect(files).toContain('src/index.ts');
    expect(files).toContain('src/node.ts');
    for (const f of files) layerOf(f);
    const missing = files.flatMap((f) => localEdges(f, true).filter((e) => !graph.has(e.to)).map((e) => `${f} -> ${e.to}`));
    expect(missing).toEqual([]);
    // The parser sees the import forms in use (guards against a regex that silently matches nothing).
    expect(graph.get('src/index.ts')!.length).toBeGreaterThan(15);
    expect(graph.get('src/attack/engine.ts')!.some((e) => e.to === 'src/attack/engine-cpu.ts' && !e.typeOnly)).toBe(true);
    expect(graph.get('src/core/defence.ts')!.some((e) => e.to === 'src/core/scenario.ts' && e.typeOnly)).toBe(true);
  });

  it('(a) has no runtime import cycle, and no type-only cycle beyond the listed ones', () => {
    expect(cycles(false)).toEqual([]);
    const allowed = new Set(ALLOWED_TYPE_CYCLES.map((c) => [...c].sort().join(' <-> ')));
    expect(cycles(true).map((c) => c.join(' <-> ')).filter((c) => !allowed.has(c))).toEqual([]);
  });

  it('(b) every import points to the same or a lower layer', () => {
    const rank = (l: Layer) => LAYERS.indexOf(l);
    const up: string[] = [];
    for (const f of files) {
      for (const e of localEdges(f, true)) {
        if (!graph.has(e.to)) continue;
        const [from, to] = [layerOf(f), layerOf(e.to)];
        if (rank(to) > rank(from)) up.push(`${f} (${from}) -> ${e.to} (${to})`);
        // cli/ and web/ share the top rank but are two programs: neither imports the other.
        if (from === 'app' && to === 'app' && f.split('/')[1] !== e.to.split('/')[1]) up.push(`${f} -> ${e.to}`);
      }
    }
    expect(up).toEqual([]);
  });

  it('(c) nothing Node-only is reachable from src/index.ts or the explorer page', () => {
    for (const entry of ['src/index.ts', 'src/web/main.ts']) {
      const bad: string[] = [];
      for (const f of reachable(entry)) {
        if (isNodeOnlyFile(f)) bad.push(f);
        for (const e of graph.get(f)!) if (!e.local && !e.typeOnly && isNodeOnlySpec(e.to)) bad.push(`${f} imports ${e.to}`);
      }
      expect(bad, entry).toEqual([]);
    }
  });

  it('(c) Node built-ins and Node-only packages are imported only under src/node/, src/cli/ and src/node.ts', () => {
    const bad = files.flatMap((f) => graph.get(f)!.filter((e) => !e.local && isNodeOnlySpec(e.to) && !isNodeOnlyFile(f)).map((e) => `${f} imports ${e.to}`));
    expect(bad).toEqual([]);
  });

  it('every module in src/node/ needs Node: a built-in, a Node-only package, or another node/ module', () => {
    const browserSafe = files
      .filter((f) => f.startsWith('src/node/'))
      .filter((f) => !graph.get(f)!.some((e) => (e.local ? e.to.startsWith('src/node/') : isNodeOnlySpec(e.to))));
    expect(browserSafe).toEqual([]);
  });

  it('one kernel registry: only src/gpu/kernels.ts compiles pipelines and imports WGSL, and no shader declares its own caps', () => {
    const compiles = files.filter((f) => f !== 'src/gpu/kernels.ts' && /createComputePipeline|\bperDevice\(/.test(readFileSync(f, 'utf8')));
    expect(compiles).toEqual([]);
    const wgslImports = files.filter((f) => f !== 'src/gpu/kernels.ts' && graph.get(f)!.some((e) => e.to.endsWith('.wgsl')));
    expect(wgslImports).toEqual([]);
    expect(graph.get('src/gpu/kernels.ts')!.filter((e) => e.to.endsWith('.wgsl')).length).toBeGreaterThan(10); // the check sees WGSL imports
    // Array caps come from the registry's rows (injected in front of the source), never from a shader.
    const shaderDirs = readdirSync('shaders', { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => `shaders/${d.name}`);
    const shaders = ['shaders', ...shaderDirs].flatMap((d) => readdirSync(d).filter((n) => n.endsWith('.wgsl')).map((n) => `${d}/${n}`));
    expect(shaders.length).toBeGreaterThan(10);
    const ownCaps = shaders.flatMap((f) => (readFileSync(f, 'utf8').match(/^const MAX_\w+: u32 = \d+u;/gm) ?? []).map((m) => `${f}: ${m}`));
    expect(ownCaps).toEqual([]);
  });
});
