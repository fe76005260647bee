/**
 * The `dlg` binary end to end (dist/node/cli.js, built by test/global-setup.ts): --help everywhere,
 * `simulate` for each data set, `eval` output shapes and CPU (float64) vs WebGPU agreement.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { matchL2Batched } from '../src/core/model.js';
import { Rng } from '../src/core/rng.js';
import { type Scenario, parseScenario } from '../src/core/scenario.js';
import { expectClose } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'dlg-cli-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function dlg(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['dist/node/cli.js', ...args], { env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' }, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (err as { code?: unknown }).code : 0;
      resolve({ code: typeof code === 'number' ? code : -1, stdout, stderr });
    });
  });
}

async function ok(args: string[]): Promise<Run> {
  const r = await dlg(args);
  expect(r.code, `dlg ${args.join(' ')}\n${r.stderr}`).toBe(0);
  return r;
}

function readScenario(path: string): Scenario {
  return parseScenario(JSON.parse(readFileSync(path, 'utf8')));
}

/** P×B×D (or B×D when P is null) normal fake inputs, as nested arrays. */
function fakes(B: number, D: number, P: number | null, seed: number): { json: unknown; flat: Float64Array } {
  const rng = new Rng(seed);
  const n = (P ?? 1) * B * D;
  const flat = Float64Array.from({ length: n }, () => rng.normal());
  const batch = (p: number) => Array.from({ length: B }, (_, i) => Array.from(flat.subarray((p * B + i) * D, (p * B + i + 1) * D)));
  return { json: P === null ? batch(0) : Array.from({ length: P }, (_, p) => batch(p)), flat };
}

function expectEvalShape(out: unknown, P: number, B: number, D: number): { loss: number[]; gradient: number[][][] } {
  const o = out as { loss: number[]; gradient: number[][][] };
  expect(Object.keys(o)).toEqual(['loss', 'gradient']);
  expect(o.loss.length).toBe(P);
  for (const l of o.loss) expect(typeof l === 'number' && Number.isFinite(l) && l >= 0).toBe(true);
  expect(o.gradient.length).toBe(P);
  for (const batch of o.gradient) {
    expect(batch.length).toBe(B);
    for (const row of batch) {
      expect(row.length).toBe(D);
      for (const v of row) expect(typeof v === 'number' && Number.isFinite(v)).toBe(true);
    }
  }
  return o;
}

describe('dlg --help', () => {
  it('exits 0 with usage for the program and every command', async () => {
    const top = await ok(['--help']);
    expect(top.stdout).toContain('Usage: dlg');
    const section = top.stdout.split(/^Commands:$/m)[1] ?? '';
    const commands = [...section.matchAll(/^ {2}(\w[\w-]*)/gm)].map((m) => m[1]).filter((c) => c !== 'help');
    expect(commands).toEqual(expect.arrayContaining(['simulate', 'eval']));
    const runs = await Promise.all(commands.map((c) => dlg([c, '--help']).then((r) => ({ c, r }))));
    for (const { c, r } of runs) {
      expect(r.code, `dlg ${c} --help: ${r.stderr}`).toBe(0);
      expect(r.stdout).toContain(`Usage: dlg ${c}`);
    }
    const sim = runs.find((x) => x.c === 'simulate')!.r.stdout;
    for (const flag of ['--dataset', '--batch', '--features', '--outputs', '--reduction', '--bias-scale', '--seed', '--out', '--json']) expect(sim).toContain(flag);
    const ev = runs.find((x) => x.c === 'eval')!.r.stdout;
    for (const flag of ['--fake', '--backend', '--adapter', '--json']) expect(ev).toContain(flag);
  });
});

describe('dlg simulate', () => {
  it('gaussian: any D and K, bias, sum reduction; JSON summary matches the file; same seed, same bytes', async () => {
    const out = join(dir, 'gauss.json');
    const args = ['simulate', '--dataset', 'gaussian', '--batch', '3', '--features', '5', '--outputs', '2', '--reduction', 'sum', '--bias-scale', '0.5', '--seed', '7', '--out', out];
    const r = await ok([...args, '--json']);
    const summary = JSON.parse(r.stdout);
    const s = readScenario(out);
    expect([s.B, s.D, s.K, s.reduction]).toEqual([3, 5, 2, 'sum']);
    expect(s.inputs).toBeDefined();
    expect(Array.from(s.b).every((v) => v !== 0)).toBe(true);
    for (const v of s.y) expect(v === 0 || v === 1).toBe(true);
    expect(summary).toMatchObject({ out, dataset: 'gaussian', seed: 7, reduction: 'sum', biasScale: 0.5, B: 3, D: 5, K: 2 });
    expect(summary.gradientNorm.weights).toBeCloseTo(Math.hypot(...s.gradient.W), 12);
    expect(summary.gradientNorm.bias).toBeCloseTo(Math.hypot(...s.gradient.b), 12);
    expect(summary.labelCounts).toEqual([0, 1].map((k) => s.y[k] + s.y[2 + k] + s.y[4 + k]));
    const bytes = readFileSync(out);
    await ok(args);
    expect(readFileSync(out)).toEqual(bytes);
  });

  it('iris: D=4, K=3 one-hot, human summary', async () => {
    const out = join(dir, 'iris.json');
    const r = await ok(['simulate', '--dataset', 'iris', '--batch', '6', '--seed', '3', '--out', out]);
    const s = readScenario(out);
    expect([s.B, s.D, s.K]).toEqual([6, 4, 3]);
    for (let n = 0; n < s.B; n++) expect(s.y[n * 3] + s.y[n * 3 + 1] + s.y[n * 3 + 2]).toBe(1);
    expect(Array.from(s.b)).toEqual([0, 0, 0]);
    expect(r.stdout).toContain(`wrote ${out}`);
    expect(r.stdout).toContain('B=6, D=4, K=3');
    expect(r.stdout).toMatch(/‖∇W‖\s+\d\.\d{4}e[-+]\d+/);
    expect(r.stdout).toMatch(/rows per class: \[\d+, \d+, \d+\]/);
  });

  it('digits: D=64, K=10 one-hot, inputs in [0,1]; matching --features/--outputs are accepted', async () => {
    const out = join(dir, 'digits.json');
    await ok(['simulate', '--dataset', 'digits', '--batch', '4', '--features', '64', '--outputs', '10', '--seed', '5', '--out', out]);
    const s = readScenario(out);
    expect([s.B, s.D, s.K]).toEqual([4, 64, 10]);
    for (const v of s.inputs!) expect(v >= 0 && v <= 1 && Number.isInteger(v * 16)).toBe(true);
    for (let n = 0; n < s.B; n++) expect(s.y.slice(n * 10, n * 10 + 10).reduce((a, c) => a + c, 0)).toBe(1);
  });
});

describe('dlg eval', () => {
  const scenario = join(dir, 'eval-scenario.json');
  const digitsScenario = join(dir, 'eval-digits.json');

  it('--json with a B×D file gives P = 1; with P×B×D gives P; CPU values are the float64 reference', async () => {
    await ok(['simulate', '--dataset', 'gaussian', '--batch', '3', '--features', '4', '--outputs', '2', '--seed', '11', '--out', scenario]);
    const s = readScenario(scenario);
    const one = fakes(3, 4, null, 1);
    const many = fakes(3, 4, 5, 2);
    writeFileSync(join(dir, 'one.json'), JSON.stringify(one.json));
    writeFileSync(join(dir, 'many.json'), JSON.stringify(many.json));
    for (const [file, P, f] of [['one.json', 1, one], ['many.json', 5, many]] as const) {
      const r = await ok(['eval', scenario, '--fake', join(dir, file), '--backend', 'cpu', '--json']);
      expect(r.stdout.trim().startsWith('{"loss":[')).toBe(true);
      const o = expectEvalShape(JSON.parse(r.stdout), P, 3, 4);
      const ref = matchL2Batched(s, s.gradient, f.flat, P);
      expect(o.loss).toEqual(Array.from(ref.loss));
      expect(o.gradient.flat(2)).toEqual(Array.from(ref.grad));
    }
  });

  it('--backend webgpu gives the same shape and agrees with --backend cpu (rel 1e-4)', async () => {
    await ok(['simulate', '--dataset', 'digits', '--batch', '8', '--seed', '4', '--out', digitsScenario]);
    const iris = join(dir, 'eval-iris.json');
    await ok(['simulate', '--dataset', 'iris', '--batch', '3', '--seed', '4', '--out', iris]);
    const cases = [
      { path: scenario, B: 3, D: 4, P: null as number | null },
      { path: scenario, B: 3, D: 4, P: 7 },
      { path: iris, B: 3, D: 4, P: 4 },
      { path: digitsScenario, B: 8, D: 64, P: 3 }, // the workgroup regime
    ];
    for (const [i, c] of cases.entries()) {
      const s = readScenario(c.path);
      // Fakes of the data's own scale (digits: [0,1]) keep the problem well conditioned.
      const f = fakes(c.B, c.D, c.P, 100 + i);
      if (c.path === digitsScenario) for (let j = 0; j < f.flat.length; j++) f.flat[j] = Math.abs(f.flat[j]) / 3;
      const json = c.path === digitsScenario ? reshape(f.flat, c.P!, c.B, c.D) : f.json;
      const file = join(dir, `agree-${i}.json`);
      writeFileSync(file, JSON.stringify(json));
      const [gpu, cpu] = [
        await ok(['eval', c.path, '--fake', file, '--json']),
        await ok(['eval', c.path, '--fake', file, '--backend', 'cpu', '--json']),
      ];
      const P = c.P ?? 1;
      const g = expectEvalShape(JSON.parse(gpu.stdout), P, c.B, c.D);
      const o = expectEvalShape(JSON.parse(cpu.stdout), P, c.B, c.D);
      const ref = matchL2Batched(s, s.gradient, f.flat, P);
      expect(o.loss).toEqual(Array.from(ref.loss));
      // rel 1e-4 of each value, plus 1e-4 of the batch's largest entry for entries near 0.
      const gradScale = Math.max(...o.gradient.flat(2).map(Math.abs));
      expectClose(g.loss, o.loss, { abs: 1e-6 * Math.max(...o.loss), rel: 1e-4 }, `case ${i} loss`);
      expectClose(g.gradient.flat(2), o.gradient.flat(2), { abs: 1e-4 * gradScale, rel: 1e-4 }, `case ${i} gradient`);
    }
  });

  it('human output: one table row per fake batch with L_r and ‖∇ₓ′L_r‖; long tables are cut', async () => {
    const small = join(dir, 'human-small.json');
    writeFileSync(small, JSON.stringify(fakes(3, 4, 2, 9).json));
    const big = join(dir, 'human-big.json');
    writeFileSync(big, JSON.stringify(fakes(3, 4, 30, 9).json));
    const [a, b] = await Promise.all([
      ok(['eval', scenario, '--fake', small, '--backend', 'cpu']),
      ok(['eval', scenario, '--fake', big, '--backend', 'cpu']),
    ]);
    const s = readScenario(scenario);
    const ref = matchL2Batched(s, s.gradient, fakes(3, 4, 2, 9).flat, 2);
    expect(a.stdout).toContain('B=3, D=4, K=2');
    expect(a.stdout).toContain('L_r');
    const rows = a.stdout.split('\n').filter((l) => /^\s+\d+\s/.test(l));
    expect(rows.length).toBe(2);
    const [, , loss0, norm0] = rows[0].split(/\s+/);
    expect(Number(loss0)).toBeCloseTo(ref.loss[0], 6);
    expect(Number(norm0)).toBeCloseTo(Math.hypot(...ref.grad.subarray(0, 12)), 6);
    expect(b.stdout.split('\n').filter((l) => /^\s+\d+\s/.test(l)).length).toBe(20);
    expect(b.stdout).toContain('10 more');
  });

  it('a runtime failure (unknown --adapter) exits 1 with a clear message and no stdout', async () => {
    const file = join(dir, 'one.json');
    const r = await dlg(['eval', scenario, '--fake', file, '--adapter', 'no-such-adapter', '--json']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no-such-adapter');
    expect(r.stderr).not.toContain('unexpected failure');
    expect(r.stdout).toBe('');
  });
});

function reshape(flat: Float64Array, P: number, B: number, D: number): number[][][] {
  return Array.from({ length: P }, (_, p) => Array.from({ length: B }, (_, n) => Array.from(flat.subarray((p * B + n) * D, (p * B + n + 1) * D))));
}
