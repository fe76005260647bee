/**
 * `dlg surface scenario.json --res 4096 --plane coords|points|random|file|flattest … --out surface.png
 *  [--npy field.npy] [--json]`: L_r over a plane through input space, rendered to PNG, with a
 * basin census (local minima, near-zero count, flatness).
 */
import { freemem, totalmem } from 'node:os';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { basinCensus, formatCensus } from '../surface/census.js';
import { DlgInputError, describe } from '../core/errors.js';
import { type PathRole, checkDistinctPaths, checkMemory, checkOutputPath, readJsonFile, readScenarioFile, settleSignals } from '../node/io.js';
import { gradientNormSq } from '../core/model.js';
import { NpyWriter } from '../node/npy.js';
import {
  type Plane,
  coordinatePlane,
  explicitPlane,
  flattestPlane,
  projectOntoPlane,
  randomPlane,
  swapRows,
  threePointPlane,
  withMarker,
} from '../surface/plane.js';
import { type Colormap, writeSurfacePng } from '../node/render.js';
import { parseMatrix, type Scenario } from '../core/scenario.js';
import { MAX_RESOLUTION, type SurfaceKernel, type SurfacePath, checkResolution, createSurface, formatBytes, surfaceCpu } from '../surface/surface.js';
import { action, addBackendOptions, intArg, numArg, openDevice, printJson, progressBar, warn } from './common.js';

type PlaneKind = 'coords' | 'points' | 'random' | 'file' | 'flattest';

interface SurfaceFlags {
  res: number;
  plane: PlaneKind;
  coords?: [[number, number], [number, number]];
  points?: string[];
  planeFile?: string;
  alpha?: [number, number];
  beta?: [number, number];
  center?: string;
  filterNormalize?: boolean;
  seed: number;
  span?: number;
  out: string;
  plain?: boolean;
  npy?: string;
  json?: boolean;
  trajectory?: string;
  colormap: Colormap;
  linear?: boolean;
  contours: boolean;
  zeroTol: number;
  censusRadius: number;
  path: SurfacePath;
  kernel: SurfaceKernel;
  tileRows?: number;
  title?: string;
  backend: 'webgpu' | 'cpu';
  adapter?: string;
}

function rangeArg(v: string): [number, number] {
  const parts = v.split(',').map((s) => s.trim());
  const nums = parts.map(Number);
  if (parts.length !== 2 || parts.some((p) => p === '') || !nums.every(Number.isFinite) || !(nums[0] < nums[1])) {
    throw new InvalidArgumentError(`expected "min,max" with min < max, found ${JSON.stringify(v)}`);
  }
  return [nums[0], nums[1]];
}

/** --res: integers pass to checkResolution (which says what a too large field would need); anything else names the real range. */
function resArg(v: string): number {
  if (!/^[-+]?\d+$/.test(v.trim()) || !Number.isSafeInteger(Number(v))) {
    throw new InvalidArgumentError(`expected an integer in [2, ${MAX_RESOLUTION}] (grid points per axis), found ${JSON.stringify(v)}`);
  }
  return Number(v);
}

function coordsArg(v: string): [[number, number], [number, number]] {
  const m = /^\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*$/.exec(v);
  if (!m) throw new InvalidArgumentError(`expected "n1,d1:n2,d2" (sample,feature pairs), found ${JSON.stringify(v)}`);
  return [
    [Number(m[1]), Number(m[2])],
    [Number(m[3]), Number(m[4])],
  ];
}

function listArg(v: string): string[] {
  return v.split(',').map((s) => s.trim());
}

/** Follows a dotted key path (numbers index arrays; negative ones from the end). */
function pick(value: unknown, key: string, field: string): unknown {
  let cur = value;
  for (const part of key.split('.').filter((p) => p.length > 0)) {
    if (Array.isArray(cur) && /^-?\d+$/.test(part)) {
      const i = Number(part);
      cur = cur[i < 0 ? cur.length + i : i];
    } else if (cur && typeof cur === 'object' && !Array.isArray(cur)) {
      cur = (cur as Record<string, unknown>)[part];
    } else {
      throw new DlgInputError(field, `a JSON value with key path "${key}"`, `no "${part}" in ${describe(cur)}`);
    }
  }
  return cur;
}

/**
 * A named batch: truth | zero | swapIJ (the truth with rows I and J swapped) |
 * @file.json[:key.path] (a B×D array, e.g. @attack.json:reconstruction or
 * @attack.json:trajectory.points.0 for a restart's start).
 */
function namedPoint(s: Scenario, spec: string, field: string): { name: string; x: Float64Array } {
  const { B, D } = s;
  if (spec === 'truth') {
    if (!s.inputs) throw new DlgInputError(field, 'a scenario with "inputs" for "truth"', 'no inputs in the scenario');
    return { name: 'truth', x: s.inputs };
  }
  if (spec === 'zero') return { name: 'zero', x: new Float64Array(B * D) };
  const sw = /^swap(\d)(\d)$/.exec(spec) ?? /^swap:(\d+):(\d+)$/.exec(spec);
  if (sw) {
    if (!s.inputs) throw new DlgInputError(field, `a scenario with "inputs" for "${spec}"`, 'no inputs in the scenario');
    return { name: spec, x: swapRows(s.inputs, Number(sw[1]), Number(sw[2]), B) };
  }
  if (spec.startsWith('@')) {
    const body = spec.slice(1);
    const colon = body.indexOf(':');
    const file = colon >= 0 ? body.slice(0, colon) : body;
    const key = colon >= 0 ? body.slice(colon + 1) : '';
    const json = readJsonFile(field, file);
    const v = key ? pick(json, key, `${field} (${file})`) : json;
    return { name: key ? `${key}` : file.replace(/^.*\//, ''), x: parseMatrix(`${field} (${file}${key ? ':' + key : ''})`, v, B, D).data };
  }
  throw new DlgInputError(field, 'truth, zero, swapIJ (e.g. swap01), swap:I:J or @file.json[:key.path]', JSON.stringify(spec));
}

export function buildPlane(s: Scenario, f: SurfaceFlags): Plane {
  const center = f.center !== undefined ? namedPoint(s, f.center, '--center').x : undefined;
  switch (f.plane) {
    case 'coords': {
      const [a, b] = f.coords ?? (s.B >= 2 ? [[0, 0], [1, 0]] : [[0, 0], [0, 1]]);
      return coordinatePlane(s, { a, b, at: center, alpha: f.alpha, beta: f.beta });
    }
    case 'points': {
      const specs = f.points ?? ['truth', 'swap01', 'zero'];
      if (specs.length !== 3) throw new DlgInputError('--points', 'three comma-separated points', `${specs.length}`);
      const pts = specs.map((p, i) => namedPoint(s, p, `--points[${i}]`));
      let plane = threePointPlane(pts[0].x, pts[1].x, pts[2].x, { names: [pts[0].name, pts[1].name, pts[2].name], alpha: f.alpha, beta: f.beta });
      if (s.inputs && !pts.some((p) => p.name === 'truth')) plane = withMarker(plane, 'truth', s.inputs);
      return plane;
    }
    case 'random':
      return randomPlane(s, { seed: f.seed, center, filterNormalize: f.filterNormalize, span: f.span, alpha: f.alpha, beta: f.beta });
    case 'file': {
      if (!f.planeFile) throw new DlgInputError('--plane-file', 'a plane JSON file for --plane file', 'nothing');
      const json = readJsonFile('--plane-file', f.planeFile);
      let plane = explicitPlane(json, { B: s.B, D: s.D });
      if (f.alpha) plane = { ...plane, alpha: f.alpha };
      if (f.beta) plane = { ...plane, beta: f.beta };
      if (s.inputs) plane = withMarker(plane, 'truth', s.inputs);
      return plane;
    }
    case 'flattest':
      return flattestPlane(s, { span: f.span, alpha: f.alpha, beta: f.beta });
  }
}

/** `trajectory.points` of a `dlg attack --trajectory` result, projected onto the plane. */
function loadTrajectory(path: string, s: Scenario, plane: Plane): { alpha: number; beta: number }[] {
  const json = readJsonFile('--trajectory', path);
  const pts = pick(json, 'trajectory.points', '--trajectory');
  if (!Array.isArray(pts) || pts.length === 0) throw new DlgInputError('--trajectory', 'a result file with trajectory.points (a list of B×D arrays)', describe(pts));
  return pts.map((p, i) => {
    const x = parseMatrix(`--trajectory: trajectory.points[${i}]`, p, s.B, s.D).data;
    const m = projectOntoPlane(plane, x);
    return { alpha: m.alpha, beta: m.beta };
  });
}

/** The files a surface run reads besides the scenario (--plane-file, --trajectory, @files of --points/--center). */
function inputFiles(f: SurfaceFlags): PathRole[] {
  const at = (spec: string | undefined, field: string): PathRole[] => {
    if (!spec?.startsWith('@')) return [];
    const body = spec.slice(1);
    const colon = body.indexOf(':');
    return [{ field, path: colon >= 0 ? body.slice(0, colon) : body, role: 'input' }];
  };
  return [
    ...(f.planeFile ? [{ field: '--plane-file', path: f.planeFile, role: 'input' as const }] : []),
    ...(f.trajectory ? [{ field: '--trajectory', path: f.trajectory, role: 'input' as const }] : []),
    ...(f.points ?? []).flatMap((p, i) => at(p, `--points[${i}]`)),
    ...at(f.center, '--center'),
  ];
}

/** Memory of the flattest-plane construction: J (rows×cols), its Gram matrix and the eigen workspace. */
export function flattestPlaneBytes(B: number, D: number, K: number): number {
  const rows = D * K + K;
  const cols = B * D;
  const m = Math.min(rows, cols);
  return 8 * (rows * cols + 3 * cols * cols + m * cols);
}

/**
 * A plane whose direction vectors are tiny next to its points (or to each other) renders as
 * stripes at float32 resolution: say so, with the distances.
 */
export function degeneratePlaneWarning(plane: Plane): string | undefined {
  const norm = (a: ArrayLike<number>) => Math.sqrt(Array.from(a).reduce((acc, v) => acc + v * v, 0));
  const nu = norm(plane.u);
  const nv = norm(plane.v);
  const nc = norm(plane.center);
  const scale = Math.max(nc, nu, nv);
  const small = Math.min(nu, nv);
  if (!(scale > 0) || small >= 1e-5 * scale) return undefined;
  const [which, d] = nu <= nv ? ['u (α)', nu] : ['v (β)', nv];
  return `the plane is degenerate: its ${which} direction is ${d.toExponential(2)} long, ${(d / scale).toExponential(2)} of the plane's scale ${scale.toExponential(2)} (two of its points are that close); at float32 resolution the surface shows stripes, not the loss`;
}

async function runSurface(scenarioPath: string, f: SurfaceFlags): Promise<void> {
  const res = checkResolution(f.res, '--res');
  // Host memory: the field (f32) plus one tile and one PNG band; say what is needed.
  const need = res * res * 4 * (f.backend === 'cpu' ? 3 : 1) + 256 * 2 ** 20;
  if (need > 0.8 * totalmem()) {
    throw new DlgInputError('--res', `a resolution whose field fits in memory (${formatBytes(totalmem())} here)`, `${res} (needs about ${formatBytes(need)}; ${formatBytes(freemem())} free)`);
  }
  if (f.path === 'direct' && f.kernel !== 'auto') {
    throw new DlgInputError('--kernel', "nothing with --path direct (--kernel picks among the projected kernels)", `'${f.kernel}' with --path direct`);
  }
  checkDistinctPaths([
    { field: 'scenario', path: scenarioPath, role: 'input' },
    ...inputFiles(f),
    { field: '--out', path: f.out, role: 'output' },
    { field: '--npy', path: f.npy, role: 'output' },
  ]);
  checkOutputPath('--out', f.out);
  if (f.npy) checkOutputPath('--npy', f.npy);
  const s = readScenarioFile(scenarioPath);
  if (f.plane === 'flattest') {
    checkMemory('--plane flattest', `B=${s.B}, D=${s.D}, K=${s.K}`, { bytes: flattestPlaneBytes(s.B, s.D, s.K), largestArray: (s.D * s.K + s.K) * s.B * s.D, what: 'the Jacobian and its eigen-decomposition' });
  }
  let plane = buildPlane(s, f);
  const degenerate = degeneratePlaneWarning(plane);
  if (degenerate) warn(degenerate);
  const trajectory = f.trajectory ? loadTrajectory(f.trajectory, s, plane) : undefined;
  const scale = gradientNormSq(s.gradient);

  const t0 = performance.now();
  let field: Float32Array;
  let npy: NpyWriter | null = null;
  let info: Record<string, unknown> = {};
  try {
    if (f.npy) npy = new NpyWriter(f.npy, [res, res]);
    if (f.backend === 'cpu') {
      field = Float32Array.from(surfaceCpu(s, plane, res));
      npy?.write(field);
      info = { backend: 'cpu', path: 'f64 reference' };
    } else {
      const dev = await openDevice({ adapter: f.adapter });
      try {
        const h = createSurface(dev.device, s, plane, res, { path: f.path, kernel: f.kernel, tileRows: f.tileRows, label: 'cli.surface' });
        const bar = progressBar('surface', h.tiles);
        const full = new Float32Array(res * res);
        let done = 0;
        await h.render((tile) => {
          full.set(tile.data, tile.rowStart * res);
          npy?.write(tile.data);
          bar.update(++done, `rows ${tile.rowStart + tile.rows}/${res}`);
        });
        bar.stop();
        field = full;
        info = { backend: 'webgpu', adapter: dev.adapterName, path: h.path, kernel: h.kernel, why: h.why, rank: h.rank, constTerm: h.constTerm, tiles: h.tiles, tileRows: h.tileRows };
        h.destroy();
      } finally {
        dev.destroy();
      }
    }
    const t1 = performance.now();
    const census = basinCensus(field, res, { alpha: plane.alpha, beta: plane.beta, scale, zeroTol: f.zeroTol, radius: f.censusRadius });
    const t2 = performance.now();
    const title = f.title ?? `L_r over ${f.plane} plane, B=${s.B} D=${s.D} K=${s.K}, ${res}²`;
    await settleSignals(); // a Ctrl-C during the (synchronous) CPU field ends here, before any output is committed
    const png = await writeSurfacePng(f.out, field, res, plane, {
      plain: f.plain,
      colormap: f.colormap,
      scale: f.linear ? 'linear' : 'log',
      contours: f.contours,
      title,
      trajectory,
    });
    await settleSignals();
    npy?.close();
    npy = null;
    const t3 = performance.now();
    if (f.json) {
      printJson({
        command: 'surface',
        resolution: res,
        plane: { kind: f.plane, alpha: plane.alpha, beta: plane.beta, markers: plane.markers ?? [], labels: plane.labels },
        ...info,
        scale,
        out: f.out,
        image: { width: png.width, height: png.height, fieldX: png.fieldX, fieldY: png.fieldY, colorScale: f.linear ? 'linear' : 'log10', lo: png.lo, hi: png.hi },
        npy: f.npy ?? null,
        census,
        timing: { surfaceMs: t1 - t0, censusMs: t2 - t1, pngMs: t3 - t2 },
      });
    } else {
      process.stdout.write(
        `surface ${res}² over the ${f.plane} plane (α ∈ [${plane.alpha.join(', ')}], β ∈ [${plane.beta.join(', ')}]) in ${(t1 - t0).toFixed(0)} ms; PNG ${png.width}×${png.height} → ${f.out}${f.npy ? `, field → ${f.npy}` : ''}\n`,
      );
      process.stdout.write(formatCensus(census) + '\n');
    }
  } finally {
    npy?.abort();
  }
}

export function registerSurface(program: Command): void {
  const cmd = program
    .command('surface')
    .description('Render L_r over a plane x′ = c + α·u + β·v through input space (PNG, optional .npy) with a basin census.')
    .argument('<scenario>', 'dlg-scenario/1 file')
    .addOption(new Option('--res <n>', `grid points per axis (α and β), 2..${MAX_RESOLUTION}`).argParser(resArg).default(1024))
    .addOption(new Option('--plane <kind>', 'plane construction').choices(['coords', 'points', 'random', 'file', 'flattest']).default('coords'))
    .option('--coords <n1,d1:n2,d2>', 'coords plane: vary x[n1,d1] along α and x[n2,d2] along β (absolute values); default 0,0:1,0', coordsArg)
    .option('--points <p0,p1,p2>', 'points plane through three batches: truth, zero, swapIJ (e.g. swap01), @file.json[:key.path]; default truth,swap01,zero', listArg)
    .option('--plane-file <path>', 'file plane: {"center": B×D, "u": B×D, "v": B×D, "alpha": [min,max], "beta": [min,max]}')
    .option('--alpha <min,max>', 'α range (overrides the construction default)', rangeArg)
    .option('--beta <min,max>', 'β range', rangeArg)
    .option('--center <point>', 'coords/random plane: where the plane sits (truth, zero, swapIJ, @file.json[:key]); default truth')
    .option('--filter-normalize', 'random plane: scale each row of u, v to the norm of the center row (Li et al. 2018)')
    .option('--seed <n>', 'random plane seed', intArg(0), 0)
    .option('--span <x>', 'random/flattest plane: α, β ∈ [−span, span] (default 1)', numArg(0, Infinity, true))
    .option('--out <path>', 'PNG output', 'surface.png')
    .option('--plain', 'PNG of exactly res×res pixels, no annotation')
    .option('--npy <path>', 'also write the float32 field as .npy, shape (res, res): row j ↔ β_j, column i ↔ α_i')
    .option('--json', 'print the result (plane, census, timing) as JSON on stdout')
    .option('--trajectory <path>', 'overlay trajectory.points from a `dlg attack --trajectory` result file')
    .addOption(new Option('--colormap <name>', 'perceptual colour map').choices(['viridis', 'magma']).default('viridis'))
    .option('--linear', 'linear colour scale instead of log10')
    .option('--no-contours', 'no contour lines')
    .option('--zero-tol <x>', 'census: minima with L_r ≤ x·‖G‖² count as near-exact solutions', numArg(0, Infinity), 1e-6)
    .option('--census-radius <n>', 'census: a minimum must be ≤ every value within n grid steps (1 = 8-neighbour only)', intArg(1, 1000), 3)
    .addOption(new Option('--path <kernel>', 'GPU kernel: projected (O(B²K) per point) or direct (O(BDK), reference)').choices(['projected', 'direct']).default('projected'))
    .addOption(
      new Option('--kernel <name>', 'projected kernel: auto, b2 (B ≤ 2), unrolled (B, K ≤ 16; fastest, compiles for seconds) or general (B ≤ 64)')
        .choices(['auto', 'b2', 'unrolled', 'general'])
        .default('auto'),
    )
    .option('--tile-rows <n>', 'rows per GPU tile (default: as many as the binding limits allow)', intArg(1))
    .option('--title <text>', 'image title');
  addBackendOptions(cmd).action(action((scenario: string, flags: SurfaceFlags) => runSurface(scenario, flags)));
}
