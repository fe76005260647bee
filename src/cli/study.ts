/**
 * `dlg study`: the convergence sweep over (data set, B, D, K, optimizer) with S scenarios × P
 * restarts per configuration; writes results.jsonl, results.csv and the plots into --out.
 */
import type { Command } from 'commander';
import { join } from 'node:path';
import { DATASET_INFO } from '../core/datasets.js';
import { DlgInputError } from '../core/errors.js';
import { checkDistinctPaths, readJsonFile } from '../node/io.js';
import { type ConfigResult, DEFAULT_STUDY_CONFIG, FULL_STUDY_CONFIG, type NotRun, type StudyConfig, type StudyResult, study, validateStudyConfig } from '../node/study.js';
import { type Backend, action, addBackendOptions, openDevice, printJson, progressBar } from './common.js';
import { collect } from './defend.js';
import { DEFAULT_DEFENCE_STUDY, type DefenceStudyConfig, defenceStudy, parseDefenceAxis } from '../node/defence-study.js';

interface StudyFlags {
  config?: string;
  batch?: string;
  features?: string;
  outputs?: string;
  optimizer?: string;
  dataset?: string;
  scenarios?: string;
  restarts?: string;
  iterations?: string;
  seed?: string;
  lrAdam?: string;
  lrGd?: string;
  lrLbfgs?: string;
  initScale?: string;
  readEvery?: string;
  reduce?: string;
  full?: boolean;
  out: string;
  resume?: boolean;
  overwrite?: boolean;
  plots: boolean;
  backend: Backend;
  adapter?: string;
  json?: boolean;
  defence?: string[];
}

/**
 * iris and digits fix D and K: with no gaussian data set in the sweep, --features/--outputs (or
 * the config's) other than the data sets' own are refused, as `dlg simulate` refuses them.
 */
export function checkFixedShapes(c: StudyConfig, given: { features: boolean; outputs: boolean }): void {
  if (c.dataset.includes('gaussian')) return;
  const fixed = c.dataset.map((d) => ({ d, ...DATASET_INFO[d as 'iris' | 'digits'] }));
  for (const [axis, flag, key] of [['features', '--features', 'D'], ['outputs', '--outputs', 'K']] as const) {
    if (!given[axis]) continue;
    const allowed = new Set(fixed.map((f) => f[key]));
    const bad = c[axis].filter((v) => !allowed.has(v));
    if (bad.length > 0) {
      throw new DlgInputError(
        flag,
        `${[...allowed].join(' or ')} or nothing (${fixed.map((f) => `${f.d} has ${key} = ${f[key]}`).join(', ')}; only gaussian takes other values)`,
        c[axis].join(','),
      );
    }
  }
}

/** "1,2,4" → [1, 2, 4]; anything that is not an integer stays a string, so validation names it. */
function list(v: string): unknown[] {
  if (v.trim() === '') return [];
  return v.split(',').map((s) => {
    const t = s.trim();
    return /^[-+]?\d+$/.test(t) ? Number(t) : t;
  });
}

/** A number where it looks like one (validation rejects the rest, naming the flag's field). */
function scalar(v: string): unknown {
  const t = v.trim();
  return t !== '' && Number.isFinite(Number(t)) ? Number(t) : t;
}

/** The study configuration from --config (a JSON file) overridden by the flags. */
export function studyConfigFromFlags(f: StudyFlags): unknown {
  const base = f.config ? readJsonFile('--config', f.config) : {};
  // A --config that is not an object is left for validateStudyConfig to reject.
  if (base === null || typeof base !== 'object' || Array.isArray(base)) return base;
  const cfg: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  if (f.batch !== undefined) cfg.batch = list(f.batch);
  if (f.features !== undefined) cfg.features = list(f.features);
  if (f.outputs !== undefined) cfg.outputs = list(f.outputs);
  if (f.optimizer !== undefined) cfg.optimizer = list(f.optimizer);
  if (f.dataset !== undefined) cfg.dataset = list(f.dataset);
  if (f.scenarios !== undefined) cfg.scenarios = scalar(f.scenarios);
  if (f.restarts !== undefined) cfg.restarts = scalar(f.restarts);
  if (f.iterations !== undefined) cfg.iterations = scalar(f.iterations);
  if (f.seed !== undefined) cfg.seed = scalar(f.seed);
  if (f.initScale !== undefined) cfg.initScale = scalar(f.initScale);
  if (f.readEvery !== undefined) cfg.readEvery = scalar(f.readEvery);
  if (f.reduce !== undefined) cfg.reduce = f.reduce.trim();
  if (f.lrAdam !== undefined || f.lrGd !== undefined || f.lrLbfgs !== undefined) {
    const lr = { ...((cfg.lr as object) ?? {}) } as Record<string, unknown>;
    if (f.lrAdam !== undefined) lr.adam = scalar(f.lrAdam);
    if (f.lrGd !== undefined) lr.gd = f.lrGd.trim() === 'auto' ? 'auto' : scalar(f.lrGd);
    if (f.lrLbfgs !== undefined) lr.lbfgs = scalar(f.lrLbfgs);
    cfg.lr = lr;
  }
  return cfg;
}

function fmt(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
  return Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-2 && v !== 0) ? v.toExponential(1) : v.toPrecision(digits).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
}

export function studyTable(results: ConfigResult[], notRun: NotRun[] = []): string {
  const head = ['configuration', 'regime', 'unknowns', 'ident.', 'rank', 'λ_min', 'κ', 'solved', 'restarts ok', 'iters (med)', 'stalled', 'other sol.', 'non-finite', 'wall s'];
  const rows = results.map((r) => [
    r.key,
    r.problem?.regime ?? '—',
    r.problem ? `${r.problem.unknowns}${r.problem.reducedScenarios ? 'r' : ''}` : '—',
    r.identifiable ? 'yes' : 'no',
    fmt(r.diagnosis.rankMedian),
    fmt(r.diagnosis.smallestEigenvalue.median),
    fmt(r.diagnosis.kappa?.median),
    `${Math.round(r.successRate * 100)}%`,
    `${(r.restartSuccessRate * 100).toFixed(1)}%`,
    fmt(r.itersToSuccess?.median),
    String(r.outcomes.stalled),
    String(r.outcomes.otherSolution),
    String(r.outcomes.nonFinite),
    (r.wallTimeMs / 1000).toFixed(1),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const skipped = notRun.map((n) => `${n.key}: not run (${n.reason})`);
  return [line(head), ...rows.map(line), ...skipped].join('\n') + '\n';
}

/** The --json summary: one entry per configuration (the full records are in results.jsonl). */
export function studySummaryJson(r: StudyResult): unknown {
  return {
    ran: r.ran,
    skipped: r.skipped,
    notRun: r.notRun,
    files: r.files,
    wallTimeMs: r.wallTimeMs,
    configurations: r.results.map((c) => ({
      key: c.key,
      regime: c.problem?.regime ?? null,
      unknowns: c.problem?.unknowns ?? null,
      identifiable: c.identifiable,
      rank: c.diagnosis.rankMedian,
      kappa: c.diagnosis.kappa?.median ?? null,
      successRate: c.successRate,
      restartSuccessRate: c.restartSuccessRate,
      outcomes: c.outcomes,
      itersToSuccess: c.itersToSuccess,
      itersTypical: c.itersTypical ?? null,
      wallTimeMs: c.wallTimeMs,
    })),
  };
}

export function registerStudy(program: Command): void {
  const d = DEFAULT_STUDY_CONFIG;
  const cmd = program
    .command('study')
    .description('Convergence study: sweep B, D, K, optimizer and data set; S scenarios × P restarts each; JSON lines, CSV and plots.')
    .option('--config <file>', 'JSON file with study settings (flags override it)')
    .option('--batch <list>', `batch sizes B (default ${d.batch.join(',')})`)
    .option('--features <list>', `features D (default ${d.features.join(',')}; iris/digits fix D)`)
    .option('--outputs <list>', `outputs K (default ${d.outputs.join(',')}; iris/digits fix K)`)
    .option('--optimizer <list>', `optimizers among gd,adam,lbfgs,lm (default ${d.optimizer.join(',')})`)
    .option('--dataset <list>', `data sets among gaussian,iris,digits (default ${d.dataset.join(',')})`)
    .option('--scenarios <S>', `seeded scenarios per configuration (default ${d.scenarios})`)
    .option('--restarts <P>', `restarts per scenario (default ${d.restarts})`)
    .option('--iterations <N>', `iteration cap per restart (default ${d.iterations})`)
    .option('--seed <n>', `scenario s uses seed n+s (default ${d.seed})`)
    .option('--lr-adam <lr>', `adam learning rate (default ${d.lr.adam})`)
    .option('--lr-gd <lr>', "gd learning rate, or 'auto' = 1/λ_max of the Hessian at the truth (default auto)")
    .option('--lr-lbfgs <lr>', `L-BFGS first trial step (default ${d.lr.lbfgs})`)
    .option('--init-scale <s>', `restarts start from N(0, s²) (default ${d.initScale})`)
    .option('--read-every <n>', `read back every n iterations after 1,2,5,…,100 (default ${d.readEvery})`)
    .option('--reduce <mode>', "'auto': every optimizer solves what dlg attack solves (the subspace-reduced problem where it holds); 'off': the raw problem (default auto)")
    .option(
      '--full',
      `the big sweep as the base instead of the default: B ∈ {${FULL_STUDY_CONFIG.batch.join(',')}} × D ∈ {${FULL_STUDY_CONFIG.features.join(',')}} × K ∈ {${FULL_STUDY_CONFIG.outputs.join(',')}} × {${FULL_STUDY_CONFIG.optimizer.join(',')}}, ` +
        `S=${FULL_STUDY_CONFIG.scenarios}, P=${FULL_STUDY_CONFIG.restarts}, ${FULL_STUDY_CONFIG.iterations} iterations (about 99 min on lavapipe); flags and --config override it`,
    )
    .option('--out <dir>', 'output folder (created if missing)', 'out/study')
    .option('--resume', 'skip configurations already in <out>/results.jsonl (same settings required)')
    .option('--overwrite', 'replace earlier results in <out> (without it, or --resume, a folder with results.jsonl is refused)')
    .option('--no-plots', 'skip the plots (results.jsonl and results.csv only)')
    .option('--json', 'print a JSON summary on stdout instead of the table')
    .option(
      '--defence <spec>',
      'leakage curves instead (repeatable): a defence with a list of strengths as its last parameter, e.g. noise:gaussian:rel:1e-6,1e-4 or prune:0,0.5; ' +
        `sweeps strength × B × optimizer on digits (default B ${DEFAULT_DEFENCE_STUDY.batch.join(',')}, ${DEFAULT_DEFENCE_STUDY.optimizer.join(',')}, S=${DEFAULT_DEFENCE_STUDY.scenarios}; docs/defences.md)`,
      collect,
    );
  addBackendOptions(cmd).action(
    action(async (flags: StudyFlags) => {
      if (flags.defence) return runDefenceStudy(flags);
      // Validate everything before opening a device or touching the output folder.
      const raw = studyConfigFromFlags(flags);
      const config = validateStudyConfig(raw, flags.full ? FULL_STUDY_CONFIG : DEFAULT_STUDY_CONFIG);
      const keys = raw !== null && typeof raw === 'object' ? Object.keys(raw) : [];
      checkFixedShapes(config, { features: keys.includes('features'), outputs: keys.includes('outputs') });
      if (flags.resume && flags.overwrite) throw new DlgInputError('--overwrite', 'either --resume or --overwrite', 'both');
      checkDistinctPaths([
        { field: '--config', path: flags.config, role: 'input' },
        { field: '--out', path: join(flags.out, 'results.jsonl'), role: 'output' },
        { field: '--out', path: join(flags.out, 'results.csv'), role: 'output' },
      ]);
      const dlg = flags.backend === 'cpu' ? undefined : await openDevice({ adapter: flags.adapter });
      let bar: ReturnType<typeof progressBar> | undefined;
      try {
        const r = await study(dlg?.device ?? null, config, {
          out: flags.out,
          resume: flags.resume,
          overwrite: flags.overwrite,
          plots: flags.plots,
          backend: dlg ? dlg.adapterName : 'cpu (float64 reference)',
          onProgress: (p) => {
            bar ??= progressBar('study', p.total);
            const run = p.runs > 1 ? ` · engine run ${p.run + 1}/${p.runs}` : '';
            bar.update(p.index, `${p.key}${run} · iteration ${p.iteration}/${p.iterations}`);
          },
          onConfigDone: (_r, i, total) => bar?.update(i + 1, i + 1 === total ? 'plots…' : ''),
          onNotRun: (_n, i, total) => bar?.update(i + 1, i + 1 === total ? 'plots…' : ''),
        });
        bar?.stop();
        if (flags.json) printJson(studySummaryJson(r));
        else {
          process.stdout.write(studyTable(r.results, r.notRun));
          process.stdout.write(
            `${r.ran.length} configuration(s) run, ${r.skipped.length} resumed, ${r.notRun.length} not run, in ${(r.wallTimeMs / 1000).toFixed(1)} s; wrote ${r.files.length} files to ${flags.out}\n`,
          );
        }
      } finally {
        bar?.stop();
        dlg?.destroy();
      }
    }),
  );
}

function ints(flag: string, v: string | undefined, fallback: number[]): number[] {
  if (v === undefined) return fallback;
  const xs = list(v);
  for (const x of xs) if (typeof x !== 'number' || !Number.isInteger(x) || x < 1 || x > 64) throw new DlgInputError(flag, 'a comma-separated list of integers in [1, 64]', String(x));
  return xs as number[];
}

/** `dlg study --defence …`: the leakage curves (src/node/defence-study.ts). */
async function runDefenceStudy(flags: StudyFlags): Promise<void> {
  const d = DEFAULT_DEFENCE_STUDY;
  const one = (flag: string, v: string | undefined, fb: number) => (v === undefined ? fb : ints(flag, v, [fb])[0]);
  const seed = flags.seed === undefined ? d.seed : Number(flags.seed);
  if (!Number.isInteger(seed) || seed < 0) throw new DlgInputError('--seed', 'an integer ≥ 0', String(flags.seed));
  const config: DefenceStudyConfig = {
    dataset: (flags.dataset ? flags.dataset.split(',') : d.dataset) as DefenceStudyConfig['dataset'],
    batch: ints('--batch', flags.batch, d.batch),
    optimizer: (flags.optimizer ? flags.optimizer.split(',') : d.optimizer) as DefenceStudyConfig['optimizer'],
    defences: (flags.defence ?? []).map((s) => parseDefenceAxis(s)),
    scenarios: one('--scenarios', flags.scenarios, d.scenarios),
    restarts: flags.restarts === undefined ? d.restarts : { firstOrder: one('--restarts', flags.restarts, 1), lm: one('--restarts', flags.restarts, 1) },
    iterations: flags.iterations === undefined ? d.iterations : { firstOrder: Number(flags.iterations), lm: Number(flags.iterations) },
    seed,
  };
  if (flags.iterations !== undefined) one('--iterations', flags.iterations, 1);
  if (flags.resume && flags.overwrite) throw new DlgInputError('--overwrite', 'either --resume or --overwrite', 'both');
  const dlg = flags.backend === 'cpu' ? undefined : await openDevice({ adapter: flags.adapter });
  let bar: ReturnType<typeof progressBar> | undefined;
  try {
    const r = await defenceStudy(dlg?.device ?? null, config, {
      out: flags.out,
      resume: flags.resume,
      overwrite: flags.overwrite,
      plots: flags.plots,
      onConfigDone: (row, i, total) => {
        bar ??= progressBar('defence study', total);
        bar.update(i + 1, row.key);
      },
    });
    bar?.stop();
    if (flags.json) printJson({ ran: r.ran, skipped: r.skipped, files: r.files, wallTimeMs: r.wallTimeMs, results: r.results.map(({ perScenario: _p, ...row }) => row) });
    else {
      for (const row of r.results) {
        process.stdout.write(`${row.key.padEnd(48)} rel. err. ${row.relErr.median.toExponential(2)}  success ${(100 * row.successRate).toFixed(0).padStart(3)}%${row.predictedRelErr !== null ? `  predicted ${row.predictedRelErr.toExponential(2)}` : ''}\n`);
      }
      process.stdout.write(`${r.ran.length} configuration(s) run, ${r.skipped.length} resumed, in ${(r.wallTimeMs / 1000).toFixed(1)} s; wrote ${r.files.length} files to ${flags.out}\n`);
    }
  } finally {
    bar?.stop();
    dlg?.destroy();
  }
}
