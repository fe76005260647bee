/**
 * The package as others get it: `npm pack` (whose prepack builds dist/), the tarball unpacked into
 * an empty project as npm would, then used once through the library and once through `dlg`.
 * Offline: the dependencies come from this checkout's node_modules, linked from a parent folder of
 * the empty project (npm install would need the registry, and never writes into this checkout).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
let tmp = '';
let app = '';
let files: string[] = [];

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'dlg-pack-'));
  execFileSync('npm', ['pack', '--silent', '--pack-destination', tmp], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  const tarball = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error(`npm pack left no tarball in ${tmp}`);
  files = execFileSync('tar', ['tzf', join(tmp, tarball)], { encoding: 'utf8' }).split('\n').filter(Boolean);
  // T/node_modules → this checkout's dependencies; T/app/node_modules/dlg-webgpu ← the tarball.
  symlinkSync(realpathSync(join(root, 'node_modules')), join(tmp, 'node_modules'), 'dir');
  app = join(tmp, 'app');
  const pkg = join(app, 'node_modules', 'dlg-webgpu');
  mkdirSync(pkg, { recursive: true });
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  execFileSync('tar', ['xzf', join(tmp, tarball), '-C', pkg, '--strip-components=1']);
}, 120_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('npm pack', () => {
  it('ships the built entries, the declarations and the bin, and no tests or benches', () => {
    for (const f of ['dist/node/index.js', 'dist/node/cli.js', 'dist/browser/dlg.js', 'dist/types/index.d.ts', 'dist/types/node.d.ts', 'bin/dlg.js', 'scripts/quiet-dawn.mjs', 'package.json']) {
      expect(files, f).toContain(`package/${f}`);
    }
    expect(files.filter((f) => /^package\/(test|bench|dist\/run)\//.test(f))).toEqual([]);
  });

  it('works as a library: import, a tiny float64 attack; internals are not exported', () => {
    const script = `
      import * as dlg from 'dlg-webgpu';
      const scenario = dlg.simulateScenario({ dataset: 'gaussian', B: 1, D: 3, K: 2, seed: 4 });
      const r = await dlg.attack(null, scenario, { restarts: 4, iterations: 200, seed: 1 });
      console.log(JSON.stringify({ ok: r.metrics.success, node: typeof dlg.requestNodeDevice, leak: typeof dlg.STREAM_ENTRY_POINTS }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: app, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ ok: true, node: 'function', leak: 'undefined' });
  });

  it('type-checks a consumer against the shipped declarations', () => {
    writeFileSync(join(app, 'main.ts'), [
      "import { type AttackResult, type Scenario, attack, requestNodeDevice, simulateScenario } from 'dlg-webgpu';",
      "const s: Scenario = simulateScenario({ dataset: 'gaussian', B: 1, D: 2, K: 1, seed: 1 });",
      'const r: Promise<AttackResult> = attack(null, s, { restarts: 2 });',
      'void r; void requestNodeDevice;',
    ].join('\n'));
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const args = ['--noEmit', '--strict', '--skipLibCheck', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node,@webgpu/types', 'main.ts'];
    const r = spawnSync(process.execPath, [tsc, ...args], { cwd: app, encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });

  it('works as the dlg command', () => {
    const bin = join(app, 'node_modules', 'dlg-webgpu', 'bin', 'dlg.js');
    expect(existsSync(bin)).toBe(true);
    const out = join(app, 's.json');
    const r = spawnSync(process.execPath, [bin, 'simulate', '--dataset', 'iris', '--batch', '2', '--seed', '1', '--out', out], { cwd: app, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/shape +B=2, D=4, K=3/);
    const a = spawnSync(process.execPath, [bin, 'attack', out, '--backend', 'cpu', '--restarts', '2', '--iterations', '20', '--json'], { cwd: app, encoding: 'utf8' });
    expect(a.status, a.stderr).toBe(0);
    expect(JSON.parse(a.stdout).format).toMatch(/^dlg-attack-result\//);
  });
});
