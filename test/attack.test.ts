import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AttackResult, attack, planAttack, validateAttackOptions } from '../src/attack/attack.js';
import { analyticRecover } from '../src/analysis/analytic.js';
import { simulateScenario } from '../src/core/datasets.js';
import { loadDataset } from '../src/node/data-node.js';
import { DlgInputError } from '../src/core/errors.js';
import { gradientNormSq, matchL2 } from '../src/core/model.js';
import { scenarioToJson } from '../src/core/scenario.js';
import { relError, useGpu } from './helpers.js';

const gpu = useGpu();
const gaussian = (B: number, D: number, K: number, seed: number, reduction: 'mean' | 'sum' = 'mean') =>
  simulateScenario({ dataset: 'gaussian', B, D, K, seed, reduction, biasScale: seed % 2 ? 0.5 : 0 });
const withoutTime = (r: AttackResult) => JSON.stringify({ ...r, wallTimeMs: 0, timing: null });

describe('validateAttackOptions', () => {
  it('defaults and names the bad field', () => {
    const o = validateAttackOptions({});
    expect(o).toMatchObject({ optimizer: 'auto', reduce: 'auto', labels: 'known', method: 'optimize', trajectory: 0 });
    expect(o.restarts).toBeUndefined(); // resolved with the optimizer (planAttack)
    const lm = planAttack(gaussian(8, 64, 10, 1), {});
    expect(lm.options).toMatchObject({ optimizer: 'lm', requestedOptimizer: 'auto', restarts: 32, iterations: 50, readbackEvery: 5, stopAfter: 8, init: 'gradient' });
    expect(lm.why).toMatch(/^auto: lm .* 64 unknowns/);
    const adam = planAttack(gaussian(16, 64, 10, 1), {});
    expect(adam.options).toMatchObject({ optimizer: 'adam', restarts: 256, iterations: 2000, readbackEvery: 100, lr: 0.05, stopAfter: 0, init: 'normal' });
    expect(adam.why).toMatch(/no attack can single out x/);
    expect(planAttack(gaussian(8, 64, 10, 1), { optimizer: 'gd', restarts: 8 }).options).toMatchObject({ optimizer: 'gd', restarts: 8, iterations: 2000 });
    expect(planAttack(gaussian(2, 4, 3, 1), { loss: 'cosine' }).options.optimizer).toBe('adam');
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ restarts: 0 }, /^restarts:/],
      [{ restarts: -3 }, /^restarts:/],
      [{ restarts: 2.5 }, /^restarts:/],
      [{ iterations: 0 }, /^iterations:/],
      [{ iterations: -1 }, /^iterations:/],
      [{ optimizer: 'sgd' }, /^optimizer: expected one of 'auto', 'gd', 'adam', 'lbfgs', 'lm'/],
      [{ reduce: 'yes' }, /^reduce: expected one of 'auto', 'on', 'off'/],
      [{ optimizer: 'lm', loss: 'cosine' }, /^loss: expected 'l2' with optimizer 'lm'/],
      [{ tol: 0 }, /^tol:/],
      [{ tol: -1e-9 }, /^tol:/],
      [{ lr: 0 }, /^lr:/],
      [{ initScale: -1 }, /^initScale:/],
      [{ loss: 'l1' }, /^loss:/],
      [{ trajectory: -1 }, /^trajectory:/],
      [{ polish: -1 }, /^polish:/],
      [{ stopAfter: -1 }, /^stopAfter:/],
      [{ stopAfter: 1.5 }, /^stopAfter:/],
      [{ seed: 1.5 }, /^seed:/],
      [{ restart: 4 }, /^restart: expected no such attack option/],
    ];
    for (const [opts, re] of bad) {
      let err: unknown;
      try {
        validateAttackOptions(opts);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(opts)).toBeInstanceOf(DlgInputError);
      expect((err as Error).message, JSON.stringify(opts)).toMatch(re);
    }
  });
});

describe('analytic recovery (B = 1)', () => {
  it('is exact on random scenarios', async () => {
    for (let s = 0; s < 40; s++) {
      const sc = gaussian(1, 1 + (s % 9), 1 + (s % 5), 500 + s, s % 3 ? 'mean' : 'sum');
      const { x } = analyticRecover(sc, sc.gradient);
      expect(relError(x, sc.inputs!), `scenario ${s}`).toBeLessThan(1e-5);
      const r = await attack(null, sc, { method: 'analytic' });
      expect(r.metrics!.relativeError).toBeLessThan(1e-5);
      expect(r.metrics!.success).toBe(true);
      expect(r.restarts.successFraction).toBe(1);
    }
  });

  it('is exact on digits scenarios, and explains why it does not apply at B > 1', async () => {
    const data = loadDataset('digits');
    for (let s = 0; s < 10; s++) {
      const sc = simulateScenario({ dataset: 'digits', B: 1, seed: 40 + s, data });
      const r = await attack(gpu(), sc, { method: 'analytic', labels: 'infer' });
      expect(r.metrics!.relativeError, `digits ${s}`).toBeLessThan(1e-5);
      expect(r.metrics!.psnr).toBeGreaterThan(100);
      expect(r.labels.flat()).toEqual(Array.from(sc.y));
      expect(r.reconstruction[0]).toHaveLength(64);
    }
    const sc2 = simulateScenario({ dataset: 'digits', B: 2, seed: 1, data });
    await expect(attack(gpu(), sc2, { method: 'analytic' })).rejects.toThrow(/B = 1.*rank-one/);
  });
});

describe('attack on the GPU', () => {
  it('(1,1,1) and (2,1,1) reach success, with consistent restart bookkeeping', async () => {
    for (const [B, seed] of [[1, 11], [2, 12]]) {
      const sc = gaussian(B, 1, 1, seed);
      const progress: number[] = [];
      const r = await attack(gpu(), sc, { optimizer: 'adam', restarts: 256, iterations: 2000, seed, onProgress: (p) => progress.push(p.iteration) }, 'test adapter');
      expect(r.backend).toBe('webgpu');
      expect(r.adapter).toBe('test adapter');
      expect(r.metrics!.success, `B=${B}: rel ${r.metrics!.relativeError}`).toBe(true);
      expect(r.metrics!.relativeError).toBeLessThan(1e-3);
      expect(r.restarts.successFraction).toBeGreaterThan(0);
      expect(r.restarts.count).toBe(256);
      expect(r.restarts.finalLoss).toHaveLength(256);
      expect(r.restarts.outcome).toHaveLength(256);
      const c = r.restarts.counts;
      expect(c.converged + c.stalled + c.nonFinite).toBe(256);
      expect(c.converged).toBe(r.restarts.outcome.filter((o) => o === 'converged').length);
      expect(r.restarts.quantiles.min).toBe(Math.min(...(r.restarts.finalLoss as number[])));
      // Read back every 100 iterations only.
      expect(progress[0]).toBe(100);
      expect(progress.length).toBe(Math.ceil(r.iterations / 100));
      expect(r.history.iteration).toEqual(progress);
      expect(r.reconstruction).toHaveLength(B);
      expect(r.loss).toBeLessThan(1e-8);
    }
  });

  it('gives identical result bytes for the same seed, and different ones for another seed', async () => {
    const sc = gaussian(2, 1, 1, 21);
    const opts = { optimizer: 'adam' as const, restarts: 64, iterations: 400, seed: 5, trajectory: 100 };
    const a = await attack(gpu(), sc, opts, 'x');
    const b = await attack(gpu(), sc, opts, 'x');
    expect(withoutTime(a)).toBe(withoutTime(b));
    const c = await attack(gpu(), sc, { ...opts, seed: 6 }, 'x');
    expect(withoutTime(c)).not.toBe(withoutTime(a));
    // The trajectory: the initial point plus one snapshot every 100 iterations, best losses non-increasing.
    const t = a.trajectory!;
    expect(t.iteration).toEqual([0, 100, 200, 300, 400].slice(0, t.iteration.length));
    expect(t.points[0]).toHaveLength(2);
    for (let i = 2; i < t.loss.length; i++) expect(t.loss[i]!).toBeLessThanOrEqual(t.loss[i - 1]!);
    expect(t.restart).toBe(a.restarts.best);
  });

  it('polishes the best restarts in float64 without ever making them worse', async () => {
    const sc = gaussian(2, 1, 1, 6);
    const raw = await attack(gpu(), sc, { optimizer: 'adam', restarts: 128, iterations: 1000, seed: 6, polish: 0 });
    const pol = await attack(gpu(), sc, { optimizer: 'adam', restarts: 128, iterations: 1000, seed: 6, polish: 3 });
    expect(raw.polish).toBeUndefined();
    const p = pol.polish!;
    expect(p.restarts).toHaveLength(3);
    expect(p.restarts[0]).toBe(raw.restarts.best);
    for (let i = 0; i < 3; i++) expect(p.lossAfter[i]!).toBeLessThanOrEqual(p.lossBefore[i]!);
    expect(pol.loss).toBeLessThanOrEqual(raw.loss);
    expect(pol.metrics!.relativeError).toBeLessThanOrEqual(raw.metrics!.relativeError);
    expect(p.exactSolutions.length).toBeGreaterThanOrEqual(1);
    expect(p.ambiguous).toBe(p.exactSolutions.length > 1);
    // The device restarts themselves are reported as they were.
    expect(pol.restarts.finalLoss).toEqual(raw.restarts.finalLoss);
    expect(pol.restarts.successFraction).toBe(raw.restarts.successFraction);
  });

  it('flags a gradient with two exact solutions as ambiguous, the truth among them', async () => {
    // (2,1,1) seed 24: besides the truth, a second input far away fits the gradient to float64 roundoff.
    // The float64 CPU engine makes the restarts (and so which solutions are found) machine-independent.
    const sc = simulateScenario({ dataset: 'gaussian', B: 2, D: 1, K: 1, seed: 24 });
    const r = await attack(null, sc, { restarts: 64, iterations: 1500, seed: 24, polish: 16, optimizer: 'lbfgs' });
    const sols = r.polish!.exactSolutions;
    expect(r.polish!.ambiguous).toBe(true);
    const errs = sols.map((x) => relError(x.flat(), sc.inputs!)).sort((a, b) => a - b);
    expect(errs[0]).toBeLessThan(1e-3);
    expect(errs[errs.length - 1]).toBeGreaterThan(0.1);
    // Both fit: L_r at each is at float64 roundoff relative to ‖G‖².
    for (const x of sols) expect(matchL2(sc, sc.gradient, x.flat()).loss).toBeLessThan(1e-14 * gradientNormSq(sc.gradient));
  });

  it('polishes one restart per basin, so that two picks find both exact solutions of seed 96', async () => {
    // (2,1,1) seed 96: the truth and a second input ~50% away both fit the gradient exactly. Most of
    // the best restarts sit on the second one; picking by loss alone polished it 4 times over.
    const sc = simulateScenario({ dataset: 'gaussian', B: 2, D: 1, K: 1, seed: 96 });
    const opts = { restarts: 64, iterations: 1500, seed: 96, optimizer: 'lbfgs' as const };
    const r = await attack(null, sc, { ...opts, polish: 2 });
    const p = r.polish!;
    expect(p.restarts).toHaveLength(2);
    expect(p.ambiguous).toBe(true);
    expect(p.exactSolutions).toHaveLength(2);
    expect(p.truthAmongExact).toBe(true);
    const errs = p.exactSolutions.map((x) => relError(x.flat(), sc.inputs!)).sort((a, b) => a - b);
    expect(errs[0]).toBeLessThan(1e-3);
    expect(errs[1]).toBeGreaterThan(0.1);
    // The reconstruction is the exact solution of the better device restart (not a roundoff-level choice).
    expect(p.chosen).toBe(0);
    expect(r.restarts.best).toBe(p.restarts[0]);
  });

  it('stops at the next readback when aborted, and still returns the best point so far', async () => {
    const sc = gaussian(2, 1, 1, 7);
    const ctl = new AbortController();
    const r = await attack(gpu(), sc, { optimizer: 'adam', restarts: 16, iterations: 5000, tol: 1e-30, polish: 0, signal: ctl.signal, onProgress: () => ctl.abort() });
    expect(r.stoppedBy).toBe('aborted');
    expect(r.iterations).toBe(100);
    expect(r.reconstruction.flat().every(Number.isFinite)).toBe(true);
  });

  it('stopAfter ends the attack at the readback where that many restarts have converged', async () => {
    const sc = gaussian(4, 16, 4, 5);
    const opts = { optimizer: 'adam' as const, restarts: 256, iterations: 2000, seed: 3, readbackEvery: 50 };
    const full = await attack(gpu(), sc, opts);
    const early = await attack(gpu(), sc, { ...opts, stopAfter: 1 });
    expect(early.stoppedBy).toBe('stop-after');
    expect(early.restarts.counts.converged).toBeGreaterThanOrEqual(1);
    expect(early.iterations).toBeLessThan(full.iterations);
    expect(early.iterations % 50).toBe(0);
    // The same restarts ran the same steps until the stop: the early run's converged restarts are
    // those of the full run that had converged by then, and both recover the truth.
    expect(full.restarts.counts.converged).toBeGreaterThanOrEqual(early.restarts.counts.converged);
    expect(early.metrics!.success).toBe(true);
    expect(full.metrics!.success).toBe(true);
  });

  it('rolls a non-finite restart back to its best point, freezes it and counts it', async () => {
    const sc = gaussian(2, 1, 1, 31);
    // A wildly large gd step overflows f32 within a few iterations.
    const r = await attack(gpu(), sc, { restarts: 32, iterations: 200, optimizer: 'gd', lr: 1e36, seed: 1 });
    expect(r.restarts.counts.nonFinite).toBeGreaterThan(0);
    expect(r.restarts.outcome.filter((o) => o === 'non-finite')).toHaveLength(r.restarts.counts.nonFinite);
    for (let p = 0; p < 32; p++) if (r.restarts.outcome[p] === 'non-finite') expect(Number.isFinite(r.restarts.finalLoss[p])).toBe(true);
    expect(r.reconstruction.flat().every(Number.isFinite)).toBe(true);
    expect(Number.isFinite(r.loss)).toBe(true);
    // Frozen restarts take no more steps.
    for (let p = 0; p < 32; p++) if (r.restarts.outcome[p] === 'non-finite') expect(r.restarts.iterations[p]).toBeLessThan(200);
  });

  it('infers labels: exact at B = 1; at B > 1 attacks every candidate labelling', async () => {
    const sc1 = gaussian(1, 2, 3, 41);
    const r1 = await attack(gpu(), sc1, { optimizer: 'adam', restarts: 64, iterations: 1000, labels: 'infer', seed: 2 });
    expect(r1.labels.flat()).toEqual(Array.from(sc1.y));
    expect(r1.labelInference!.exact).toBe(true);
    expect(r1.metrics!.success).toBe(true);
    const sc2 = gaussian(2, 1, 1, 42);
    const r2 = await attack(null, sc2, { restarts: 16, iterations: 300, labels: 'infer', seed: 3, optimizer: 'lbfgs' });
    const inf = r2.labelInference!;
    expect(inf.count).toBe(inf.labelings.length);
    expect(r2.restarts.count).toBe(16 * inf.count);
    expect(inf.perLabeling).toHaveLength(inf.count);
    expect(inf.correct).toBe(true);
    expect(r2.metrics!.success).toBe(true);
    const many = simulateScenario({ dataset: 'digits', B: 8, seed: 3, data: loadDataset('digits') });
    await expect(attack(null, many, { labels: 'infer', maxLabelings: 4 })).rejects.toThrow(/^labels: expected at most 4 candidate labellings/);
  });
});

describe('dlg attack (CLI)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dlg-attack-'));
  const cli = join(process.cwd(), 'dist/node/cli.js');
  const run = (args: string[]) => spawnSync(process.execPath, [cli, 'attack', ...args], { encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' } });
  const scenarioFile = join(dir, 's.json');
  writeFileSync(scenarioFile, JSON.stringify(scenarioToJson(gaussian(2, 1, 1, 51))));

  it('rejects bad options and scenarios with exit 2 and writes no result', () => {
    const ragged = join(dir, 'ragged.json');
    const json = scenarioToJson(gaussian(2, 2, 2, 52)) as unknown as Record<string, unknown>;
    (json.weights as number[][])[1] = [1];
    writeFileSync(ragged, JSON.stringify(json));
    const b2 = join(dir, 'b2.json');
    writeFileSync(b2, JSON.stringify(scenarioToJson(gaussian(2, 3, 1, 53))));
    const cases: [string[], RegExp][] = [
      [[scenarioFile, '--restarts', '0'], /--restarts/],
      [[scenarioFile, '--restarts', '-4'], /--restarts/],
      [[scenarioFile, '--iterations', '0'], /--iterations/],
      [[scenarioFile, '--iterations', '-10'], /--iterations/],
      [[scenarioFile, '--optimizer', 'sgd'], /--optimizer/],
      [[scenarioFile, '--reduce', 'maybe'], /--reduce/],
      [[scenarioFile, '--reduce', 'on'], /reduce: expected .*found 'on' with B = 2 > K = 1/],
      [[scenarioFile, '--optimizer', 'lm', '--loss', 'cosine'], /loss: expected 'l2' with optimizer 'lm'/],
      [[scenarioFile, '--tol', '0'], /--tol/],
      [[scenarioFile, '--tol', '-1'], /--tol/],
      [[join(dir, 'missing.json')], /no such file/],
      [[ragged], /weights\[1\]/],
      [[b2, '--method', 'analytic'], /rank-one/],
    ];
    for (const [args, re] of cases) {
      const out = join(dir, 'out.json');
      const r = run([...args, '--out', out, '--backend', 'cpu']);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(re);
      expect(existsSync(out), args.join(' ')).toBe(false);
    }
  });

  it('writes the result with the documented keys, identical bytes for the same seed', () => {
    const outs = ['a.json', 'b.json'].map((f) => join(dir, f));
    for (const out of outs) {
      const r = run([scenarioFile, '--out', out, '--backend', 'cpu', '--restarts', '8', '--iterations', '300', '--seed', '4']);
      expect(r.status, r.stderr).toBe(0);
    }
    const [a, b] = outs.map((f) => JSON.parse(readFileSync(f, 'utf8')) as AttackResult);
    expect(withoutTime(a)).toBe(withoutTime(b));
    for (const k of ['reconstruction', 'loss', 'labels', 'metrics', 'restarts', 'iterations', 'wallTimeMs', 'adapter']) expect(a).toHaveProperty(k);
    for (const k of ['relativeError', 'mse', 'success']) expect(a.metrics).toHaveProperty(k);
    expect(a.restarts).toHaveProperty('successFraction');
    expect(a.backend).toBe('cpu');
    // --json prints the same result on stdout.
    const j = run([scenarioFile, '--backend', 'cpu', '--restarts', '8', '--iterations', '300', '--seed', '4', '--json']);
    expect(j.status).toBe(0);
    expect(withoutTime(JSON.parse(j.stdout) as AttackResult)).toBe(withoutTime(a));
    // The result says what ran and why: the regime, the optimizer 'auto' chose, the kernel.
    expect(a.optimizer).toBe('lm');
    expect(a.options).toMatchObject({ requestedOptimizer: 'auto', optimizer: 'lm', reduce: 'auto' });
    expect(a.regime).toMatchObject({ regime: 'direct', unknowns: 2, identifiable: true, rank: 1 });
    expect(a.engine).toMatchObject({ kernel: 'cpu', backend: 'cpu' });
    expect(a.engine.why).toMatch(/^auto: lm/);
    expect(a.bestRestart!.lambda).toBeGreaterThan(0);
    expect(a.polish!.method).toBe('lm');
    const human = run([scenarioFile, '--backend', 'cpu', '--restarts', '8', '--seed', '4']);
    expect(human.stdout).toMatch(/^regime: direct; 2 unknowns, rank ∇W 1/);
    expect(human.stdout).toMatch(/attack \(optimize lm, cpu: .*kernel cpu\)/);
    expect(human.stdout).toMatch(/float64 LM polish/);
  });

  it('writes a PNG next to the result for digits', () => {
    const digits = join(dir, 'd.json');
    execFileSync(process.execPath, [cli, 'simulate', '--dataset', 'digits', '--batch', '1', '--seed', '2', '--out', digits]);
    const out = join(dir, 'd-result.json');
    const r = run([digits, '--method', 'analytic', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    const png = readFileSync(join(dir, 'd-result.png'));
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect((JSON.parse(readFileSync(out, 'utf8')) as AttackResult).metrics!.relativeError).toBeLessThan(1e-5);
  });
});
