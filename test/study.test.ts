import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';
import { DlgInputError } from '../src/core/errors.js';
import { renderVegaLite } from '../src/node/plots.js';
import { LM_CPU_MAX_UNKNOWNS } from '../src/attack/attack.js';
import { kappaTrend, studyFindings, trendSentence } from '../src/study/report.js';
import {
  type ConfigResult,
  DEFAULT_STUDY_CONFIG,
  FULL_STUDY_CONFIG,
  STUDY_CSV_COLUMNS,
  STUDY_PLOT_NAMES,
  expandStudy,
  readStudyResults,
  readbackPoints,
  study,
  studyScenarios,
  validateStudyConfig,
} from '../src/node/study.js';
import { useGpu } from './helpers.js';

const gpu = useGpu();
const root = mkdtempSync(join(tmpdir(), 'dlg-study-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const tiny = { batch: [1, 2], features: [1], outputs: [1], optimizer: ['adam', 'gd'], scenarios: 3, restarts: 8, iterations: 300, readEvery: 100 };

function csvRows(path: string): string[][] {
  return readFileSync(path, 'utf8').trim().split('\n').map((l) => l.split(','));
}

describe('study: a tiny sweep on the GPU engine', () => {
  const out = join(root, 'sweep');
  let first: ConfigResult[] = [];

  it('writes results.jsonl, results.csv and every plot (PNG decodes, SVG from vega)', async () => {
    const seen: string[] = [];
    const progress: number[] = [];
    const r = await study(gpu(), tiny, { out, onConfigDone: (c) => seen.push(c.key), onProgress: (p) => progress.push(p.iteration) });
    first = r.results;
    expect(r.ran).toEqual(['gaussian/B1/D1/K1/adam', 'gaussian/B2/D1/K1/adam', 'gaussian/B1/D1/K1/gd', 'gaussian/B2/D1/K1/gd']);
    expect(seen).toEqual(r.ran);
    expect(progress.length).toBeGreaterThan(4);
    const lines = readFileSync(join(out, 'results.jsonl'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(4);
    const parsed = lines.map((l) => JSON.parse(l) as ConfigResult);
    for (const c of parsed) {
      expect(c.format).toBe('dlg-study/1');
      expect(c.scenarios).toHaveLength(3);
      const o = c.outcomes;
      expect(o.success + o.stalled + o.otherSolution + o.nonFinite).toBe(3 * 8);
      expect(c.history.iteration.length).toBe(c.history.median.length);
      for (let i = 0; i < c.history.median.length; i++) {
        expect(c.history.q25[i]).toBeLessThanOrEqual(c.history.median[i]);
        expect(c.history.median[i]).toBeLessThanOrEqual(c.history.q75[i]);
        if (i > 0) expect(c.history.median[i]).toBeLessThanOrEqual(c.history.median[i - 1]); // best-so-far never rises
      }
      expect(c.identifiable).toBe(true); // B ≤ 2 with D = K = 1
      expect(c.diagnosis.rankMedian).toBe(c.B);
    }
    // B = 1, D = K = 1 is the easy case: every scenario is solved, with κ = 1 (one eigenvalue).
    const b1 = parsed.find((c) => c.key === 'gaussian/B1/D1/K1/adam')!;
    expect(b1.successRate).toBe(1);
    expect(b1.diagnosis.kappa!.median).toBeCloseTo(1, 12);
    expect(b1.itersToSuccess!.median).toBeGreaterThan(0);
    for (const s of b1.scenarios) expect(s.relativeError!).toBeLessThan(1e-3);

    const csv = csvRows(join(out, 'results.csv'));
    expect(csv[0]).toEqual([...STUDY_CSV_COLUMNS]);
    expect(csv).toHaveLength(5);
    expect(csv.slice(1).map((r) => r[0])).toEqual(r.ran);
    for (const row of csv.slice(1)) expect(row).toHaveLength(STUDY_CSV_COLUMNS.length);

    for (const name of STUDY_PLOT_NAMES) {
      const png = PNG.sync.read(readFileSync(join(out, `${name}.png`)));
      expect(png.width, name).toBeGreaterThan(200);
      expect(png.height, name).toBeGreaterThan(100);
      // Not blank: some pixels are dark (text, lines).
      let dark = 0;
      for (let i = 0; i < png.data.length; i += 4) if (png.data[i] < 100 && png.data[i + 1] < 100 && png.data[i + 2] < 100) dark++;
      expect(dark, name).toBeGreaterThan(100);
      const svg = readFileSync(join(out, `${name}.svg`), 'utf8');
      expect(svg.startsWith('<svg')).toBe(true);
    }
    expect(readdirNoTemp(out)).toBe(true);
  });

  it('--resume skips the configurations already done and runs only the new ones (here on the CPU engine)', async () => {
    const before = readFileSync(join(out, 'results.jsonl'), 'utf8');
    const r = await study(null, { ...tiny, batch: [1, 2, 4] }, { out, resume: true, plots: false });
    expect(r.skipped).toEqual(['gaussian/B1/D1/K1/adam', 'gaussian/B2/D1/K1/adam', 'gaussian/B1/D1/K1/gd', 'gaussian/B2/D1/K1/gd']);
    expect(r.ran).toEqual(['gaussian/B4/D1/K1/adam', 'gaussian/B4/D1/K1/gd']);
    const after = readStudyResults(join(out, 'results.jsonl'));
    expect(after.map((c) => c.key)).toEqual([
      'gaussian/B1/D1/K1/adam', 'gaussian/B2/D1/K1/adam', 'gaussian/B4/D1/K1/adam',
      'gaussian/B1/D1/K1/gd', 'gaussian/B2/D1/K1/gd', 'gaussian/B4/D1/K1/gd',
    ]);
    // The resumed records are kept byte for byte.
    for (const line of before.trim().split('\n')) expect(readFileSync(join(out, 'results.jsonl'), 'utf8')).toContain(line);
    const b4 = after.find((c) => c.key === 'gaussian/B4/D1/K1/adam')!;
    expect(b4.backend).toMatch(/cpu/);
    // B·D = 4 > D·K + K = 2: never identifiable; rank 2, a 2-dimensional family of exact solutions.
    expect(b4.identifiable).toBe(false);
    expect(b4.diagnosis.rankMedian).toBe(2);
    expect(b4.successRate).toBe(0);
    expect(csvRows(join(out, 'results.csv'))).toHaveLength(7);
    // Nothing left to do: a second resume runs nothing.
    const again = await study(null, { ...tiny, batch: [1, 2, 4] }, { out, resume: true, plots: false });
    expect(again.ran).toEqual([]);
    expect(again.skipped).toHaveLength(6);
    expect(first.length).toBe(4);
  });

  it('--resume refuses results made with other settings, naming them', async () => {
    await expect(study(null, { ...tiny, restarts: 9 }, { out, resume: true, plots: false })).rejects.toThrow(/resume: expected results in .* made with the same settings/);
  });
});

function readdirNoTemp(dir: string): boolean {
  // Atomic writes leave no temporary files behind.
  return !spawnSync('ls', ['-a', dir], { encoding: 'utf8' }).stdout.includes('.tmp');
}

describe('study: lm on the CPU engine, reduced per scenario', () => {
  const out = join(root, 'lm');
  // (B, 4, 4): B ≤ K < D reduces to B² unknowns; (4, 4, 1) is not identifiable (B·D = 16 > D·K + K = 5).
  const cfg = { batch: [1, 2], features: [4], outputs: [4], optimizer: ['adam', 'lm'], scenarios: 2, restarts: 4, iterations: 200, readEvery: 100 };
  let results: ConfigResult[] = [];

  it('runs lm per reduced scenario, lifts its points back and scores them against the truth; results carry the regime', async () => {
    const progress: { run: number; runs: number }[] = [];
    const r = await study(null, cfg, { out, onProgress: (p) => progress.push({ run: p.run, runs: p.runs }) });
    results = r.results;
    expect(r.ran).toEqual(['gaussian/B1/D4/K4/adam', 'gaussian/B2/D4/K4/adam', 'gaussian/B1/D4/K4/lm', 'gaussian/B2/D4/K4/lm']);
    expect(r.notRun).toEqual([]);
    for (const c of r.results) {
      // Every optimizer solves the attack's problem: the reduced one, one engine per scenario.
      expect(c.settings.reduce).toBe('auto');
      expect(c.problem).toEqual({ regime: 'subspace', regimes: { subspace: 2 }, unknowns: c.B * c.B, reducedScenarios: 2, engineRuns: 2 });
      for (const s of c.scenarios) expect([s.regime, s.unknowns, s.reduced]).toEqual(['subspace', c.B * c.B, true]);
      expect(c.diagnosis.kappaUnreduced!.median).toBeGreaterThan(0);
      const o = c.outcomes;
      expect(o.success + o.stalled + o.otherSolution + o.nonFinite).toBe(2 * 4);
    }
    expect(progress.some((p) => p.runs === 2 && p.run === 1)).toBe(true);
    const lm = r.results.filter((c) => c.optimizer === 'lm');
    for (const c of lm) {
      expect(c.backend).toMatch(/cpu/);
      expect(c.successRate).toBe(1); // scored in the full space: relative error < 1e-3 against x itself
      for (const s of c.scenarios) expect(s.relativeError!).toBeLessThan(1e-3);
      expect(c.itersTypical!.median).toBeLessThan(50);
    }
    // B = 1 reduced: one unknown, κ = 1 exactly.
    expect(lm[0].diagnosis.kappa!.median).toBeCloseTo(1, 10);
    const csv = csvRows(join(out, 'results.csv'));
    expect(csv[0]).toEqual([...STUDY_CSV_COLUMNS]);
    expect(csv[3][STUDY_CSV_COLUMNS.indexOf('regime')]).toBe('subspace');
    expect(existsSync(join(out, 'e_iterations_vs_kappa_by_optimizer.png'))).toBe(true);
  });

  it('summary.md states what the results measured: sentences and table generated from them', () => {
    const md = readFileSync(join(out, 'summary.md'), 'utf8');
    const findings = studyFindings(results);
    expect(findings.length).toBeGreaterThanOrEqual(3);
    for (const f of findings) expect(md).toContain(f);
    const lm = results.filter((c) => c.optimizer === 'lm');
    const t = kappaTrend(results, 'lm');
    expect(t.points.map((p) => p.key)).toEqual(lm.map((c) => c.key)); // B = 1 (κ = 1) before B = 2
    expect(md).toContain(`${lm[1].itersTypical!.median}`);
    expect(md).toMatch(/\| gaussian\/B2\/D4\/K4 \| subspace \| 4 \(reduced\) \| yes \|/);
    expect(md).toContain('the problem `dlg attack` would solve');
    expect(md).toContain('![e_iterations_vs_kappa_by_optimizer.png]');
  });

  it('--resume keeps the lm lines and runs only what is new', async () => {
    const before = readFileSync(join(out, 'results.jsonl'), 'utf8');
    const r = await study(null, { ...cfg, optimizer: ['adam', 'lm'] }, { out, resume: true, plots: false });
    expect(r.ran).toEqual([]);
    expect(r.skipped).toEqual(['gaussian/B1/D4/K4/adam', 'gaussian/B2/D4/K4/adam', 'gaussian/B1/D4/K4/lm', 'gaussian/B2/D4/K4/lm']);
    expect(readFileSync(join(out, 'results.jsonl'), 'utf8')).toBe(before);
    // reduce is a setting: a resume with the raw problem refuses these lines
    await expect(study(null, { ...cfg, reduce: 'off' }, { out, resume: true, plots: false })).rejects.toThrow(/resume: expected results in .* same settings/);
  });

  it('reduce off: every optimizer on the raw problem (one engine); a non-identifiable lm configuration stays unsolved', async () => {
    const r = await study(null, { ...cfg, batch: [4], outputs: [1], optimizer: ['lm'], reduce: 'off', restarts: 2 });
    const c = r.results[0];
    expect(c.problem).toMatchObject({ regime: 'unidentifiable', unknowns: 16, reducedScenarios: 0, engineRuns: 1 });
    expect(c.identifiable).toBe(false);
    expect(c.successRate).toBe(0);
    expect(unsolved(r.results)).toMatch(/non-identifiable .* stay unsolved/);
  });

  it('a configuration beyond lm\'s caps is not run, with the reason, and the rest of the sweep runs', async () => {
    const dir = join(root, 'lm-cap');
    const D = Math.ceil((LM_CPU_MAX_UNKNOWNS + 1) / 16);
    const r = await study(null, { batch: [16], features: [D], outputs: [1], optimizer: ['lm'], scenarios: 1, restarts: 1, iterations: 1 }, { out: dir });
    expect(r.results).toEqual([]);
    expect(r.notRun).toHaveLength(1);
    expect(r.notRun[0].key).toBe(`gaussian/B16/D${D}/K1/lm`);
    expect(r.notRun[0].reason).toMatch(new RegExp(`at most ${LM_CPU_MAX_UNKNOWNS} unknowns.*${16 * D}.*unidentifiable`));
    expect(readFileSync(join(dir, 'summary.md'), 'utf8')).toContain(`- gaussian/B16/D${D}/K1/lm: ${r.notRun[0].reason}.`);
  });
});

function unsolved(results: ConfigResult[]): string {
  return studyFindings(results).join(' ');
}

describe('study report', () => {
  const fake = (optimizer: string, kappa: number, iters: number | null, success = 1): ConfigResult =>
    ({
      key: `gaussian/B${Math.round(kappa)}/D1/K1/${optimizer}`,
      optimizer,
      identifiable: iters !== null,
      successRate: iters === null ? 0 : 1,
      restartSuccessRate: success,
      settings: { iterations: 3000 },
      diagnosis: { kappa: { q25: kappa, median: kappa, q75: kappa } },
      itersTypical: iters === null ? null : { q25: iters, median: iters, q75: iters },
      scenarios: iters === null ? [] : [{ success: true, kappa, itersMedianSuccessful: iters }],
    }) as unknown as ConfigResult;

  it('the sentences follow the numbers: growth for first-order, a flat range for lm, unsolved non-identifiable runs', () => {
    const rs = [fake('adam', 1, 100, 1), fake('adam', 30, 300, 0.9), fake('adam', 500, 2000, 0.4), fake('lm', 1, 3), fake('lm', 30, 4), fake('lm', 500, 7), fake('lm', 40, null)];
    const adam = trendSentence(kappaTrend(rs, 'adam'));
    expect(adam).toMatch(/^adam's median iterations to tolerance grow from 100 at κ ≈ 1 .* to 2000 at κ ≈ 500 /);
    expect(adam).toMatch(/drop from 100% to 40%/);
    expect(adam).toMatch(/κ\^0\.\d\d/);
    expect(trendSentence(kappaTrend(rs, 'lm'))).toMatch(/^lm's median iterations to tolerance stay at 3–7 while κ goes from 1 to 500/);
    expect(unsolved(rs)).toMatch(/All 1 non-identifiable runs .* stay unsolved/);
    // Other numbers, other sentence: nothing is hard-coded.
    const falling = [fake('gd', 1, 900), fake('gd', 100, 90)];
    expect(trendSentence(kappaTrend(falling, 'gd'))).toMatch(/^gd's median iterations to tolerance fall from 900/);
    expect(trendSentence(kappaTrend([fake('gd', 5, null)], 'gd'))).toBe('gd solved no configuration, so it has no iteration count.');
  });
});

describe('study configuration', () => {
  it('the default sweep includes lm and is small; --full is the old 5×4×3×2 = 120-configuration sweep', () => {
    const c = validateStudyConfig({});
    expect(c.optimizer).toEqual(['gd', 'adam', 'lm']);
    expect(c.reduce).toBe('auto');
    expect(expandStudy(c)).toHaveLength(DEFAULT_STUDY_CONFIG.batch.length * DEFAULT_STUDY_CONFIG.features.length * DEFAULT_STUDY_CONFIG.outputs.length * 3);
    const full = validateStudyConfig({}, FULL_STUDY_CONFIG);
    expect(expandStudy(full)).toHaveLength(120);
    expect([full.scenarios, full.restarts, full.iterations]).toEqual([32, 256, 5000]);
    expect(validateStudyConfig({ restarts: 8 }, FULL_STUDY_CONFIG).batch).toEqual([1, 2, 4, 8, 16]);
  });

  it('iris and digits fix D and K (only B × optimizer vary)', () => {
    const pts = expandStudy(validateStudyConfig({ dataset: ['gaussian', 'iris', 'digits'], batch: [1, 2], features: [1, 4], outputs: [1], optimizer: ['adam'] }));
    expect(pts.map((p) => p.key)).toEqual([
      'gaussian/B1/D1/K1/adam', 'gaussian/B2/D1/K1/adam', 'gaussian/B1/D4/K1/adam', 'gaussian/B2/D4/K1/adam',
      'iris/B1/D4/K3/adam', 'iris/B2/D4/K3/adam', 'digits/B1/D64/K10/adam', 'digits/B2/D64/K10/adam',
    ]);
    // Scenarios of one configuration share W and b, and differ in their inputs.
    const sc = studyScenarios(pts[5], 3, 1);
    expect(sc[1].W).toEqual(sc[0].W);
    expect(sc[2].b).toEqual(sc[0].b);
    expect(sc[1].inputs).not.toEqual(sc[0].inputs);
  });

  it('runs an iris configuration without an output folder (library use, CPU engine)', async () => {
    const r = await study(null, { dataset: ['iris'], batch: [2], optimizer: ['adam'], scenarios: 2, restarts: 4, iterations: 50 });
    expect(r.files).toEqual([]);
    expect(r.results.map((c) => c.key)).toEqual(['iris/B2/D4/K3/adam']);
    const c = r.results[0];
    expect(c.identifiable).toBe(true); // 8 unknowns ≤ 15 equations
    expect(c.outcomes.success + c.outcomes.stalled + c.outcomes.otherSolution + c.outcomes.nonFinite).toBe(8);
  });

  it('read-back points ramp up geometrically, then every readEvery, and end at the cap', () => {
    expect(readbackPoints(1000, 250)).toEqual([1, 2, 5, 10, 20, 50, 100, 250, 500, 750, 1000]);
    expect(readbackPoints(30, 10)).toEqual([1, 2, 5, 10, 20, 30]);
    expect(readbackPoints(3, 250)).toEqual([1, 2, 3]);
  });

  it('bad configurations are DlgInputErrors naming the field', () => {
    const bad: [unknown, RegExp][] = [
      [{ batch: [] }, /^batch: expected a non-empty array/],
      [{ batch: [1, 2.5] }, /^batch\[1\]: expected an integer/],
      [{ features: ['4'] }, /^features\[0\]: expected an integer/],
      [{ outputs: [0] }, /^outputs\[0\]: expected an integer in \[1/],
      [{ batch: [2, 2] }, /^batch\[1\]: expected distinct values/],
      [{ dataset: ['mnist'] }, /^dataset\[0\]: expected one of 'gaussian', 'iris', 'digits'/],
      [{ optimizer: ['sgd'] }, /^optimizer\[0\]: expected one of 'gd', 'adam', 'lbfgs'/],
      [{ optimizer: [] }, /^optimizer: expected a non-empty array/],
      [{ scenarios: 0 }, /^scenarios: expected an integer/],
      [{ iterations: 1.5 }, /^iterations: expected an integer/],
      [{ lr: { adam: -1 } }, /^lr\.adam: expected a finite number > 0/],
      [{ batchs: [1] }, /^batchs: expected a study setting/],
      [{ reduce: 'on' }, /^reduce: expected one of 'auto', 'off'/],
      [[1, 2], /^study config: expected a JSON object/],
    ];
    for (const [cfg, msg] of bad) {
      expect(() => validateStudyConfig(cfg), JSON.stringify(cfg)).toThrow(DlgInputError);
      expect(() => validateStudyConfig(cfg)).toThrow(msg);
    }
  });

  it('study() rejects a bad configuration before writing anything', async () => {
    const out = join(root, 'never');
    await expect(study(null, { batch: [] }, { out })).rejects.toThrow(DlgInputError);
    expect(existsSync(out)).toBe(false);
    const file = join(root, 'a-file');
    writeFileSync(file, 'x');
    await expect(study(null, { batch: [1], features: [1], outputs: [1], optimizer: ['adam'], scenarios: 1, restarts: 1, iterations: 1 }, { out: file })).rejects.toThrow(/^out: expected a folder/);
  });
});

describe('dlg study (CLI)', () => {
  const cli = (args: string[]) => spawnSync(process.execPath, ['dist/node/cli.js', 'study', ...args], { encoding: 'utf8' });

  it('bad flags exit 2 with a clear message and leave no output folder', () => {
    const cases: [string[], RegExp][] = [
      [['--batch', ''], /batch: expected a non-empty array/],
      [['--batch', '1,x'], /batch\[1\]: expected an integer .*found "x"/],
      [['--features', '1.5'], /features\[0\]: expected an integer .*found "1.5"/],
      [['--optimizer', 'adam,sgd'], /optimizer\[1\]: expected one of/],
      [['--dataset', 'mnist'], /dataset\[0\]: expected one of/],
      [['--restarts', '0'], /restarts: expected an integer/],
    ];
    for (const [args, msg] of cases) {
      const out = join(root, `bad-${args[0].slice(2)}`);
      const r = cli([...args, '--out', out, '--backend', 'cpu']);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(msg);
      expect(existsSync(out)).toBe(false);
    }
  });

  it('runs a tiny sweep on the CPU backend from a --config file, with --json', () => {
    const out = join(root, 'cli');
    const cfg = join(root, 'cfg.json');
    writeFileSync(cfg, JSON.stringify({ batch: [1], features: [1, 2], outputs: [1], optimizer: ['adam'], scenarios: 2, restarts: 4 }));
    const r = cli(['--config', cfg, '--iterations', '200', '--out', out, '--backend', 'cpu', '--no-plots', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.ran).toEqual(['gaussian/B1/D1/K1/adam', 'gaussian/B1/D2/K1/adam']);
    expect(j.configurations).toHaveLength(2);
    expect(existsSync(join(out, 'results.jsonl'))).toBe(true);
    expect(existsSync(join(out, 'results.csv'))).toBe(true);
    expect(existsSync(join(out, 'a_loss_vs_iteration.png'))).toBe(false);
    const table = cli(['--config', cfg, '--iterations', '200', '--out', out, '--backend', 'cpu', '--no-plots', '--resume']);
    expect(table.status, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/gaussian\/B1\/D2\/K1\/adam +subspace +1r +yes/);
    expect(table.stdout).toMatch(/0 configuration\(s\) run, 2 resumed/);
  });
});

describe('plots', () => {
  it('renderVegaLite gives an SVG and a PNG that decodes, at the requested scale', async () => {
    const { svg, png } = await renderVegaLite(
      { width: 100, height: 80, data: { values: [{ a: 1, b: 2 }, { a: 2, b: 3 }] }, mark: 'line', encoding: { x: { field: 'a', type: 'quantitative' }, y: { field: 'b', type: 'quantitative' } } },
      { scale: 1 },
    );
    expect(svg).toMatch(/^<svg/);
    expect(svg).toContain('DejaVu Sans');
    const img = PNG.sync.read(Buffer.from(png));
    expect(img.width).toBeGreaterThan(100);
    const img2 = PNG.sync.read(Buffer.from((await renderVegaLite({ width: 100, height: 80, data: { values: [{ a: 1, b: 2 }] }, mark: 'point', encoding: { x: { field: 'a', type: 'quantitative' } } }, { scale: 2 })).png));
    expect(img2.width).toBeGreaterThan(200);
  });
});
