/**
 * Attack quality on the public scenario set, every optimizer side by side (issue: exact recovery
 * in tens of iterations). For each configuration and seed:
 *  - `auto` (the default: lm in the reduced or direct regime) on the GPU, warm (library call,
 *    device and pipelines already made): success, iterations, wall time and its split
 *    (plan = SVD + reduction, engine set-up = pipeline compile, run = kernel, polish);
 *  - the same on the float64 CPU engine (`--backend cpu`), in the same run;
 *  - cold: `dlg attack` as a fresh process per scenario (the first --cold seeds), wall time;
 *  - the first-order optimizers with their defaults (adam, and --first-order lbfgs,gd), on the
 *    first --first-order-seeds seeds (they take 10–1000× longer).
 * Success: relative error ≤ 1e-6 (rows matched within equal labels), or, where the gradient has
 * several exact solutions, the truth among them.
 *
 *   node scripts/run-ts.mjs bench/attack-quality.ts [--seeds 20] [--cold 3] [--first-order-seeds 2]
 *     [--first-order adam] [--only gaussian|digits|iris] [--configs 8,784,10:2,1,1]
 *
 * JSON lines on stdout (one per configuration and optimizer), then a markdown table.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AttackResult, attack } from '../src/attack/attack.js';
import { loadDataset } from '../src/node/data-node.js';
import { simulateScenario } from '../src/core/datasets.js';
import { DlgInputError } from '../src/core/errors.js';
import { type Scenario, scenarioToJson } from '../src/core/scenario.js';
import { benchArgs, benchDevice, emit, machine, median } from './common.js';

const args = benchArgs();
const seeds = Number(args.seeds ?? 20);
const coldSeeds = Number(args.cold ?? 3);
const foSeeds = Number(args['first-order-seeds'] ?? 2);
const firstOrder = String(args['first-order'] ?? 'adam').split(',').filter(Boolean) as ('adam' | 'gd' | 'lbfgs')[];
const only = args.only === undefined ? undefined : String(args.only);
const GAUSSIAN: [number, number, number][] = args.configs
  ? String(args.configs).split(':').map((c) => c.split(',').map(Number) as [number, number, number])
  : [[2, 1, 1], [4, 1, 4], [2, 13, 3], [4, 16, 4], [8, 16, 10], [8, 64, 10], [8, 784, 10], [8, 3072, 10], [16, 256, 20]];
const REL_OK = 1e-6;

interface Config {
  name: string;
  make(seed: number): Scenario;
}
const configs: Config[] = [];
if (!only || only === 'gaussian') {
  for (const [B, D, K] of GAUSSIAN) configs.push({ name: `gaussian (${B},${D},${K})`, make: (seed) => simulateScenario({ dataset: 'gaussian', B, D, K, seed }) });
}
if (!only || only === 'digits') {
  const data = loadDataset('digits');
  for (let B = 1; B <= 10; B++) configs.push({ name: `digits B=${B}`, make: (seed) => simulateScenario({ dataset: 'digits', B, seed, data }) });
}
if (!only || only === 'iris') {
  const data = loadDataset('iris');
  for (let B = 1; B <= 3; B++) configs.push({ name: `iris B=${B}`, make: (seed) => simulateScenario({ dataset: 'iris', B, seed, data }) });
}

const ok = (r: AttackResult): boolean =>
  (r.metrics?.relativeError ?? Infinity) <= REL_OK || (r.polish?.ambiguous === true && r.polish.truthAmongExact === true);

interface Acc {
  ok: number;
  n: number;
  iters: number[];
  wall: number[];
  split: { planMs: number[]; engineSetupMs: number[]; runMs: number[]; polishMs: number[] };
  restartSuccess: number[];
  failed: number[];
  kernel: Set<string>;
  regime: Set<string>;
}
const acc = (): Acc => ({ ok: 0, n: 0, iters: [], wall: [], split: { planMs: [], engineSetupMs: [], runMs: [], polishMs: [] }, restartSuccess: [], failed: [], kernel: new Set(), regime: new Set() });
function add(a: Acc, r: AttackResult, seed: number): void {
  a.n++;
  if (ok(r)) a.ok++;
  else a.failed.push(seed);
  a.iters.push(r.bestRestart?.iterations ?? r.iterations);
  a.wall.push(r.wallTimeMs);
  for (const k of Object.keys(a.split) as (keyof Acc['split'])[]) a.split[k].push(r.timing[k]);
  a.restartSuccess.push(r.restarts.successFraction ?? 0);
  a.kernel.add(r.engine.kernel);
  a.regime.add(`${r.regime.regime} (${r.regime.unknowns} unknowns)`);
}
const summary = (a: Acc) => ({
  successFraction: a.ok / a.n,
  scenarios: a.n,
  medianIterations: median(a.iters),
  medianWallMs: median(a.wall),
  medianSplitMs: Object.fromEntries(Object.entries(a.split).map(([k, v]) => [k, median(v)])),
  meanRestartSuccess: a.restartSuccess.reduce((x, y) => x + y, 0) / a.n,
  failedSeeds: a.failed,
  kernel: [...a.kernel].join(','),
  regime: [...a.regime].join(','),
});

const dir = mkdtempSync(join(tmpdir(), 'dlg-quality-'));
const cli = join(process.cwd(), 'dist/node/cli.js');
const dlg = await benchDevice();
const rows: string[] = [];
try {
  for (const c of configs) {
    const gpu = acc();
    const cpu = acc();
    const fo = Object.fromEntries(firstOrder.map((o) => [o, acc()])) as Record<string, Acc>;
    const cold: number[] = [];
    const foNotRun: Record<string, string> = {};
    for (let seed = 0; seed < seeds; seed++) {
      const sc = c.make(seed);
      add(gpu, await attack(dlg.device, sc, { seed }, dlg.adapterName), seed);
      add(cpu, await attack(null, sc, { seed }), seed);
      if (seed < coldSeeds) {
        const f = join(dir, `s${seed}.json`);
        writeFileSync(f, JSON.stringify(scenarioToJson(sc)));
        const t0 = performance.now();
        const p = spawnSync(process.execPath, [cli, 'attack', f, '--seed', String(seed), '--out', join(dir, `r${seed}.json`)], { encoding: 'utf8' });
        cold.push(performance.now() - t0);
        if (p.status !== 0) throw new Error(`dlg attack failed on ${c.name} seed ${seed}: ${p.stderr}`);
      }
      if (seed < foSeeds) {
        for (const o of firstOrder) {
          try {
            add(fo[o], await attack(dlg.device, sc, { seed, optimizer: o }, dlg.adapterName), seed);
          } catch (err) {
            // Beyond the first-order kernels' caps (e.g. K > 16): recorded, not a bench failure.
            if (!(err instanceof DlgInputError)) throw err;
            foNotRun[o] = err.message;
          }
        }
      }
      process.stderr.write(`\r${c.name} ${seed + 1}/${seeds}: auto ${gpu.ok} ok, cpu ${cpu.ok} ok   `);
    }
    process.stderr.write('\n');
    const g = summary(gpu);
    const line = { config: c.name, optimizer: 'auto', backend: 'webgpu', ...g, coldProcessMs: { median: median(cold), all: cold }, adapter: dlg.adapterName, machine: machine() };
    emit('attack-quality', line);
    const cs = summary(cpu);
    emit('attack-quality', { config: c.name, optimizer: 'auto', backend: 'cpu', ...cs, machine: machine() });
    const foCells: string[] = [];
    for (const o of firstOrder) {
      if (foNotRun[o]) {
        emit('attack-quality', { config: c.name, optimizer: o, backend: 'webgpu', notRun: foNotRun[o], adapter: dlg.adapterName, machine: machine() });
        foCells.push(`not run: ${foNotRun[o]}`);
        continue;
      }
      const s = summary(fo[o]);
      emit('attack-quality', { config: c.name, optimizer: o, backend: 'webgpu', ...s, adapter: dlg.adapterName, machine: machine() });
      foCells.push(`${s.scenarios ? `${(100 * s.successFraction).toFixed(0)}%, ${s.medianIterations} it, ${(s.medianWallMs / 1000).toFixed(2)} s` : '—'}`);
    }
    const sp = g.medianSplitMs as Record<string, number>;
    rows.push(
      `| ${c.name} | ${g.regime} | ${g.kernel} | ${gpu.ok}/${gpu.n} | ${g.medianIterations} | ${(100 * g.meanRestartSuccess).toFixed(0)}% | ` +
        `${median(cold).toFixed(0)} ms | ${g.medianWallMs.toFixed(0)} ms (${sp.planMs.toFixed(0)} / ${sp.engineSetupMs.toFixed(0)} / ${sp.runMs.toFixed(0)} / ${sp.polishMs.toFixed(0)}) | ` +
        `${cpu.ok}/${cpu.n}, ${cs.medianWallMs.toFixed(0)} ms | ${foCells.join(' | ')} |`,
    );
  }
} finally {
  dlg.destroy();
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(
  [
    '',
    `Attack quality (${dlg.adapterName}; default options; success = rel. err. ≤ ${REL_OK} or the truth among several exact solutions; ${seeds} seeds, cold on the first ${coldSeeds}, first-order on the first ${foSeeds})`,
    '',
    `| scenario | regime | kernel | recovered (GPU, auto) | median iterations (best restart) | restarts within 1e-3 (device, unpolished) | cold \`dlg attack\` process | warm library call (plan / set-up / run / polish) | CPU float64 engine: recovered, warm | ${firstOrder.map((o) => `${o} (defaults): success, iterations, wall`).join(' | ')} |`,
    `|---|---|---|---|---|---|---|---|---|${firstOrder.map(() => '---|').join('')}`,
    ...rows,
    '',
  ].join('\n'),
);
