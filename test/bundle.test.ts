// The browser bundles (library and demo page) must not pull in Node built-ins or Node-only packages.
import { build, type Metafile } from 'esbuild';
import { existsSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { describe, expect, it } from 'vitest';
import { buildDemo } from '../scripts/demo.mjs';

/** Packages that only work in Node (or are only for PNG/plots/CLI): none may reach a browser bundle. */
const NODE_ONLY_PACKAGES = ['webgpu', 'pngjs', 'cli-progress', 'commander', 'vega', 'vega-lite', '@resvg/resvg-js', 'dejavu-fonts-ttf'];
/** Node-only modules of this project: the Node entry, the node/ layer and the CLI (see test/layers.test.ts). */
const isNodeOnlySource = (input: string): boolean => input === 'src/node.ts' || input.startsWith('src/node/') || input.startsWith('src/cli/');

function offendingInputs(meta: Metafile): string[] {
  const bad: string[] = [];
  for (const [input, info] of Object.entries(meta.inputs)) {
    if (isNodeOnlySource(input)) bad.push(input);
    for (const pkg of NODE_ONLY_PACKAGES) if (input.includes(`node_modules/${pkg}/`)) bad.push(input);
    for (const imp of info.imports) {
      const p = imp.path.replace(/^node:/, '');
      if (imp.external || imp.path.startsWith('node:') || builtinModules.includes(p)) bad.push(`${input} imports ${imp.path}`);
    }
  }
  return bad;
}

/** Static imports/requires of Node built-ins left in bundle text (e.g. from a package marked external). */
function builtinReferences(text: string): string[] {
  const found = new Set<string>();
  const re = /(?:from\s*|import\s*\(\s*|require\s*\(\s*|import\s+)["']([^"']+)["']/g;
  for (const m of text.matchAll(re)) {
    const spec = m[1];
    const bare = spec.replace(/^node:/, '').split('/')[0];
    if (spec.startsWith('node:') || builtinModules.includes(bare)) found.add(spec);
  }
  return [...found];
}

describe('browser bundle', () => {
  it('src/index.ts bundles for platform=browser with no Node built-in or Node-only package', async () => {
    const r = await build({
      entryPoints: ['src/index.ts'],
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      loader: { '.wgsl': 'text' },
      metafile: true,
      logLevel: 'silent',
    });
    expect(r.errors).toEqual([]);
    expect(offendingInputs(r.metafile)).toEqual([]);
    const text = r.outputFiles[0].text;
    expect(builtinReferences(text)).toEqual([]);
    // The entry really is the library (guards against an empty or wrong entry passing vacuously).
    expect(Object.keys(r.metafile.inputs)).toContain('src/gpu/device.ts');
    expect(text).toContain('requestBrowserDevice');
  });

  it('dist/browser/dlg.js (built by global setup) has no Node built-in imports', () => {
    const path = 'dist/browser/dlg.js';
    expect(existsSync(path), `${path} should exist (test/global-setup.ts runs scripts/build.mjs)`).toBe(true);
    const text = readFileSync(path, 'utf8');
    expect(builtinReferences(text)).toEqual([]);
    expect(text).not.toMatch(/\brequire\s*\(/);
    expect(text).toContain('requestBrowserDevice');
  });

  it('the demo page bundle (src/web/main.ts) is browser-safe too', async () => {
    const meta = await buildDemo();
    expect(offendingInputs(meta)).toEqual([]);
    expect(Object.keys(meta.inputs)).toContain('src/web/main.ts');
    const text = readFileSync('dist/web/main.js', 'utf8');
    expect(builtinReferences(text)).toEqual([]);
  });

  it('the checks catch a Node built-in when one is present', async () => {
    // A bundle that does import node:fs (marked external so it builds) must be flagged.
    const r = await build({
      stdin: { contents: "import { readFileSync } from 'node:fs'; export const f = readFileSync;", loader: 'ts', resolveDir: '.' },
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'browser',
      external: ['node:fs'],
      metafile: true,
      logLevel: 'silent',
    });
    expect(offendingInputs(r.metafile).length).toBeGreaterThan(0);
    expect(builtinReferences(r.outputFiles[0].text)).toEqual(['node:fs']);
  });
});
