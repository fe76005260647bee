/**
 * The explorer page: L_r over a plane through input space, rendered on navigator.gpu with the library's
 * surface kernel, re-rendered while the user drags; live multi-restart attacks drawn over it.
 *
 * One device and one surface handle live for the whole session (pipelines are cached per device);
 * renders are coalesced (the latest state wins, at most one in flight), so the controls stay responsive.
 * Every failure ends up as an inline message: bad controls next to the control, GPU errors and device
 * loss in the message area (the device is then recreated). window.__dlgTest exposes hooks for tests.
 */
import type { DlgDevice } from '../gpu/device.js';
import { requestBrowserDevice } from '../gpu/device.js';
import { DATASET_INFO, simulateScenario } from '../core/datasets.js';
import { ATTACK_DEFAULTS, DEFAULT_LR } from '../attack/attack.js';
import { createAttackEngine } from '../attack/engine.js';
import { runLoop } from '../attack/run-loop.js';
import type { EngineHandle } from '../attack/engine-cpu.js';
import { defendScenario } from '../core/defence.js';
import { DlgInputError } from '../core/errors.js';
import { gradientNormSq } from '../core/model.js';
import { analyseScenario } from '../analysis/reduce.js';
import { imageSide, psnrPeak, reconstructionMetrics } from '../analysis/matching.js';
import { type Plane, planeToJson, projectOntoPlane } from '../surface/plane.js';
import { Rng } from '../core/rng.js';
import { type Scenario, scenarioToJson } from '../core/scenario.js';
import { type SurfaceOptions, createSurface } from '../surface/surface.js';
import { type ScaleDomain, colorize, fieldRange, scaleDomain } from './colormap.js';
import { loadTable } from './data.js';
import { buildPlane, defaultSpan, offPlaneDirection, planeSignature } from './planes.js';
import { type DefenceReadout, describeDefence, fmt, medianOf } from './readouts.js';
import { $, num } from './dom.js';
import { clearMessage, describeError, inlineErrors, messages, setInline, showMessage, slotFor } from './messages.js';
import { type DefenceKind, type Settings, kindSpec, readSettings, selectDefenceKind, sliderToValue, updateDefenceControls } from './controls.js';

export { LIMITS } from './controls.js';
import { type LossSeries, type Marker, type View, drawAxes, drawColorBar, drawImage, drawLossCurve, drawOverlay, fitCanvas, fromPx } from './plot.js';

/** Restarts whose paths are drawn (plus the best one): more would only be clutter. */
const MAX_DRAWN_TRAJECTORIES = 24;
const PLOT_SIZE = 560;

// ---------------------------------------------------------------- state
interface Gpu {
  dlg: DlgDevice;
  gen: number;
}
let gpu: Gpu | null = null;
let deviceGen = 0;
let recovering: Promise<void> | null = null;

/** The last valid settings; a bad control leaves these (and the picture) as they were. */
let settings: Settings | null = null;
/** The scenario the controls name, undefended; `scenario` is it with the defence applied (the one rendered and attacked). */
let baseScenario: Scenario | null = null;
let scenario: Scenario | null = null;
let scenarioKey = '';
/** scenarioKey plus the defence: what the surface and the attack target depend on. */
let defendedKey = '';

let defenceReadout: DefenceReadout | null = null;
/** Plane from the settings, before the view (pan/zoom/slice offset) is applied. */
let basePlane: Plane | null = null;
let planeKey = '';
/** Third direction for moving the slice centre off the plane (null when B·D = 2). */
let offDir: Float64Array | null = null;
const view = { pan: [0, 0] as [number, number], zoom: 1 };

interface SurfaceState {
  handle: ReturnType<typeof createSurface>;
  gen: number;
  key: string; // scenario + res
  planeSig: string;
}
let surf: SurfaceState | null = null;

interface Frame {
  field: Float32Array;
  res: number;
  plane: Plane;
  domain: ScaleDomain;
  gpuMs: number;
  drawMs: number;
}
let lastFrame: Frame | null = null;
let frames = 0;

interface AttackState {
  running: boolean;
  stop: boolean;
  series: LossSeries;
  /** Per drawn restart, its best point after each chunk (raw B·D, re-projected on every plane change). */
  paths: Float32Array[][];
  drawn: number[];
  bestRestart: number;
  bestX: Float32Array | null;
  startX: Float64Array | null;
  summary: AttackSummary | null;
  scenarioKey: string;
  /** The defence of the gradient the last attack ran on. */
  defence: string;
  /** Bumped by resetAttack: a running attack whose run id is stale stops without touching the page. */
  runId: number;
}
export interface AttackSummary {
  P: number;
  iterations: number;
  bestLoss: number;
  relativeError: number | null;
  success: boolean | null;
  converged: number;
  nonFinite: number;
  wallMs: number;
  stopped: boolean;
  /** The defence of the gradient it attacked ('none' when undefended). */
  defence: string;
}
const attackState: AttackState = { running: false, stop: false, series: { iterations: [], best: [], median: [] }, paths: [], drawn: [], bestRestart: 0, bestX: null, startX: null, summary: null, scenarioKey: '', defence: 'none', runId: 0 };

// ---------------------------------------------------------------- device
function noWebGpuHelp(reason: string): void {
  const box = $('nogpu');
  box.hidden = false;
  box.innerHTML = `<h2>WebGPU is not available</h2>
<p>${reason}</p>
<p>This page renders the loss surface and runs the attack on the GPU through WebGPU (<code>navigator.gpu</code>). To enable it:</p>
<ul>
<li><b>Chrome / Edge 113+</b> on Windows, macOS and ChromeOS: WebGPU is on by default; make sure hardware acceleration is enabled (chrome://settings/system) and check <code>chrome://gpu</code>.</li>
<li><b>Chrome on Linux</b>: enable <code>chrome://flags/#enable-unsafe-webgpu</code> and <code>chrome://flags/#enable-vulkan</code>, or start it with <code>--enable-unsafe-webgpu --enable-features=Vulkan</code> (headless Chromium: <code>--enable-unsafe-webgpu</code> gives the SwiftShader CPU adapter).</li>
<li><b>Firefox</b>: WebGPU is on in Firefox 141+ on Windows; elsewhere set <code>dom.webgpu.enabled</code> to true in <code>about:config</code> (Nightly).</li>
<li><b>Safari</b> 26+ has WebGPU; on older versions enable it under Develop → Feature Flags.</li>
<li>WebGPU needs a secure context: open the page over <code>http://localhost</code> / <code>127.0.0.1</code> (as <code>npm run demo</code> prints) or https.</li>
</ul>`;
  $('adapter').textContent = 'adapter: none';
  for (const el of Array.from(document.querySelectorAll<HTMLButtonElement>('#controls button'))) el.disabled = true;
}

async function initDevice(): Promise<Gpu> {
  const gen = ++deviceGen;
  const dlg = await requestBrowserDevice({
    // Losses are handled below through device.lost (also for simulated losses, whose reason is 'destroyed').
    onLost: () => {},
    onUncapturedError: (err) => {
      const kind = err.constructor?.name === 'GPUOutOfMemoryError' ? 'out-of-memory' : 'validation';
      showMessage('error', `gpu-${kind}`, `WebGPU ${kind} error (the page keeps running; the last picture may be stale): ${err.message}`);
    },
  });
  const g: Gpu = { dlg, gen };
  dlg.device.lost.then((info) => {
    if (gpu !== g) return; // an old device, already replaced
    void onDeviceLost(info);
  });
  gpu = g;
  $('adapter').textContent = `adapter: ${dlg.adapterName}`;
  return g;
}

async function onDeviceLost(info: GPUDeviceLostInfo): Promise<void> {
  if (recovering) return recovering;
  gpu = null;
  surf = null; // its buffers died with the device
  attackState.stop = true;
  showMessage('error', 'device-lost', `The GPU device was lost (${info.reason || 'unknown reason'}${info.message ? `: ${info.message}` : ''}). Recreating it…`);
  recovering = (async () => {
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        await initDevice();
        showMessage('warn', 'device-lost', `The GPU device was lost (${info.reason || 'unknown'}${info.message ? `: ${info.message}` : ''}) and has been recreated (attempt ${attempt}). Rendering resumed.`);
        requestRender();
        return;
      } catch (err) {
        if (attempt === 3) {
          showMessage('error', 'device-lost', `The GPU device was lost and could not be recreated: ${describeError(err)}. Reload the page.`);
        }
        await new Promise((r) => setTimeout(r, 250 * attempt));
      }
    }
  })();
  try {
    await recovering;
  } finally {
    recovering = null;
  }
}

async function ensureGpu(): Promise<Gpu> {
  if (recovering) await recovering;
  if (!gpu) await initDevice();
  return gpu!;
}

// ---------------------------------------------------------------- scenario and plane
/** The scenario the settings name (the current one when unchanged); does not install it. */
async function buildScenario(s: Settings): Promise<{ sc: Scenario; key: string }> {
  const key = `${s.dataset}|${s.B}|${s.D}|${s.K}|${s.seed}`;
  if (baseScenario && key === scenarioKey) return { sc: baseScenario, key };
  const data = s.dataset === 'gaussian' ? undefined : await loadTable(s.dataset);
  return { sc: simulateScenario({ dataset: s.dataset, B: s.B, D: s.D, K: s.K, seed: s.seed, data }), key };
}

/** The plane actually rendered: base plane with the view's pan/zoom and slice offset. */
function viewPlane(): Plane {
  const p = basePlane!;
  const s = settings!;
  const ha = ((p.alpha[1] - p.alpha[0]) / 2) * view.zoom;
  const hb = ((p.beta[1] - p.beta[0]) / 2) * view.zoom;
  const ma = (p.alpha[0] + p.alpha[1]) / 2 + view.pan[0];
  const mb = (p.beta[0] + p.beta[1]) / 2 + view.pan[1];
  let center = p.center;
  if (offDir && s.depth !== 0) {
    center = Float64Array.from(p.center);
    const f = s.depth * Math.max(ha, hb);
    for (let i = 0; i < center.length; i++) center[i] += f * offDir[i];
  }
  return { ...p, center, alpha: [ma - ha, ma + ha], beta: [mb - hb, mb + hb] };
}

// ---------------------------------------------------------------- applying the controls
/**
 * Validates all controls; bad ones get inline messages and change nothing. Good ones update the
 * scenario/plane and schedule a render. Returns false when anything was rejected.
 */
let applySeq = 0;
let latestApply: Promise<boolean> = Promise.resolve(true);

async function applyControls(): Promise<boolean> {
  const seq = ++applySeq;
  const p = applyControlsNow(seq);
  latestApply = p;
  return p;
}

async function applyControlsNow(seq: number): Promise<boolean> {
  const { s, errs } = readSettings();
  const dataset = s.dataset;
  // Fixed shapes for the real data sets.
  num('D').disabled = dataset !== 'gaussian';
  num('K').disabled = dataset !== 'gaussian';
  if (dataset !== 'gaussian') {
    num('D').value = String(DATASET_INFO[dataset].D);
    num('K').value = String(DATASET_INFO[dataset].K);
  }
  document.querySelectorAll<HTMLElement>('.coords-only').forEach((e) => (e.hidden = s.plane !== 'coords'));
  document.querySelectorAll<HTMLElement>('.random-only').forEach((e) => (e.hidden = s.plane !== 'random' && s.plane !== 'filter'));
  updateDefenceControls();
  for (const slot of ['B', 'D', 'K', 'seed', 'coords', 'span', 'res', 'P', 'iters', 'lr', 'defStrength', 'defC', 'defSeed']) setInline(slot, errs.get(slot) ?? null);
  // Scenario/plane problems block a re-render; attack-only problems (P, iters, lr) do not.
  const blocking = [...errs.keys()].some((k) => !['P', 'iters', 'lr'].includes(k));
  if (blocking) return false;
  let built: { sc: Scenario; key: string };
  try {
    built = await buildScenario(s);
  } catch (err) {
    if (seq !== applySeq) return latestApply;
    if (err instanceof DlgInputError) setInline(slotFor(err.field), err.message);
    else showMessage('error', 'scenario', `Could not build the scenario: ${describeError(err)}`);
    return false;
  }
  // A newer change arrived while the data loaded: it decides.
  if (seq !== applySeq) return latestApply;
  const sc = built.sc;
  // The defence: src/core/defence.ts on the undefended scenario (cached per scenario and defence).
  const dkey = `${built.key}|${s.defence.label}`;
  let defended = scenario;
  if (dkey !== defendedKey || !defended) {
    try {
      defended = defendScenario(sc, s.defence.list, 'defence strength');
    } catch (err) {
      if (err instanceof DlgInputError) setInline('defStrength', err.message);
      else showMessage('error', 'defence', `Could not apply the defence: ${describeError(err)}`);
      return false;
    }
  }
  if (built.key !== scenarioKey) planeKey = '';
  if (dkey !== defendedKey) {
    // A running attack works on the old gradient: it stops (its paths stay, labelled with their gradient).
    if (attackState.running && built.key === scenarioKey) {
      attackState.stop = true;
      showMessage('info', 'defence', `The defence changed to ${s.defence.label} while an attack ran on ${attackState.defence}: that attack was stopped. Press Attack to attack the defended gradient.`);
    }
    // The SVD behind the out-of-subspace energy costs ~0.5 s at D·K = 4096·64: for large layers it
    // follows once the slider rests, so dragging stays responsive.
    const large = sc.D * sc.K > LARGE_SVD;
    defenceReadout = describeDefence(sc, defended, s.defence.label, !large);
    clearTimeout(readoutTimer);
    if (large) {
      const [b, d] = [sc, defended];
      readoutTimer = setTimeout(() => {
        if (defendedKey !== dkey || !settings) return;
        defenceReadout = describeDefence(b, d, s.defence.label, true);
        writeDefenceInfo(settings);
      }, 300);
    }
  }
  baseScenario = sc;
  scenario = defended;
  scenarioKey = built.key;
  defendedKey = dkey;
  writeDefenceInfo(s);
  const pkey = `${scenarioKey}|${s.plane}|${s.n1},${s.d1},${s.n2},${s.d2}|${s.planeSeed}|${s.span}|${s.plane === 'attack' ? attackState.summary?.wallMs : ''}`;
  if (pkey !== planeKey) {
    try {
      basePlane = buildPlane(s, sc, attackState); // through the true inputs: the defence does not move it
    } catch (err) {
      if (err instanceof DlgInputError) setInline(slotFor(err.field), err.message);
      else showMessage('error', 'plane', `Could not build the plane: ${describeError(err)}`);
      return false;
    }
    planeKey = pkey;
    offDir = offPlaneDirection(basePlane, s.planeSeed);
    view.pan = [0, 0];
    view.zoom = 1;
  }
  num('depth').disabled = !offDir;
  num('depth').title = offDir ? 'Moves the slice centre c out of the plane, along a fixed third direction' : 'B·D = 2: the plane is the whole input space';
  settings = s;
  // Paths and reconstructions belong to one scenario.
  if (attackState.scenarioKey !== scenarioKey) resetAttack();
  $('depthOut').textContent = s.depth.toFixed(2);
  clearMessage('scenario');
  clearMessage('plane');
  updateDigits();
  requestRender();
  return true;
}

// ---------------------------------------------------------------- rendering
let renderWanted = false;
let pumping: Promise<void> | null = null;
/** A throttled defence-slider change not yet applied (idle() waits for it). */
let sliderPending: Promise<void> | null = null;

function requestRender(): void {
  renderWanted = true;
  if (!pumping) pumping = pump();
}

async function pump(): Promise<void> {
  try {
    while (renderWanted) {
      renderWanted = false;
      try {
        await renderOnce();
        clearMessage('render');
        clearMessage('input-general');
      } catch (err) {
        if (err instanceof DlgInputError) {
          setInline(slotFor(err.field), err.message);
        } else if (gpu === null || recovering) {
          // The device went away mid-render: onDeviceLost reports it and re-renders after recovery.
        } else {
          showMessage('error', 'render', `Rendering failed: ${describeError(err)}`);
        }
      }
      // Let input events run between frames (rAF when visible; a macrotask otherwise).
      await new Promise<void>((r) => setTimeout(r, 0));
    }
  } finally {
    pumping = null;
  }
}

/** Resolves once no render is wanted or in flight and no device recovery is under way. */
async function idle(): Promise<void> {
  for (;;) {
    if (recovering) await recovering;
    else if (sliderPending) await sliderPending;
    else if (pumping) await pumping;
    else if (renderWanted) requestRender();
    else return;
  }
}

async function renderOnce(): Promise<void> {
  if (!settings || !scenario || !basePlane) return;
  const g = await ensureGpu();
  const s = settings;
  const sc = scenario;
  const plane = viewPlane();
  const res = s.res;
  const key = `${defendedKey}|${res}`;
  const sig = planeSignature(plane);
  const t0 = performance.now();
  if (!surf || surf.gen !== g.gen || surf.key !== key) {
    surf?.handle.destroy();
    surf = null;
    surf = { handle: createSurface(g.dlg.device, sc, plane, res, { label: 'explorer.surface' }), gen: g.gen, key, planeSig: sig };
  } else if (surf.planeSig !== sig) {
    const h = surf.handle as { setPlane?: (p: Plane) => void };
    if (h.setPlane) h.setPlane(plane);
    else {
      surf.handle.destroy();
      surf = { handle: createSurface(g.dlg.device, sc, plane, res, { label: 'explorer.surface' }), gen: g.gen, key, planeSig: sig };
    }
    surf.planeSig = sig;
  }
  $('info').textContent = `rendering ${res}² …`;
  const field = await surf.handle.render();
  if (!field) throw new Error('the surface returned no field');
  if (gpu !== g) return; // device replaced meanwhile: this frame is stale
  const t1 = performance.now();
  const domain = draw(field, res, plane, s);
  const t2 = performance.now();
  lastFrame = { field, res, plane, domain, gpuMs: t1 - t0, drawMs: t2 - t1 };
  frames++;
  writeInfo();
}

let imageData: ImageData | null = null;

/** Colour-maps the field onto the surface canvas and redraws colour bar, axes and overlay. */
function draw(field: Float32Array, res: number, plane: Plane, s: Settings): ScaleDomain {
  const canvas = $<HTMLCanvasElement>('surface');
  if (canvas.width !== res || canvas.height !== res) {
    canvas.width = res;
    canvas.height = res;
  }
  canvas.style.width = `${PLOT_SIZE}px`;
  canvas.style.height = `${PLOT_SIZE}px`;
  if (!imageData || imageData.width !== res) imageData = new ImageData(res, res);
  const range = fieldRange(field);
  const domain = scaleDomain(s.scale, range);
  const bad = colorize(field, res, domain, s.cmap, new Uint32Array(imageData.data.buffer));
  canvas.getContext('2d')!.putImageData(imageData, 0, 0);
  if (bad > 0) showMessage('warn', 'non-finite', `${bad} grid points are NaN or ±Inf (drawn magenta).`);
  else clearMessage('non-finite');
  drawColorBar($<HTMLCanvasElement>('colorbar'), domain, s.cmap, PLOT_SIZE);
  const v: View = { alpha: plane.alpha, beta: plane.beta, res, size: PLOT_SIZE };
  const names: [string, string] = [plane.labels?.alpha ?? 'α', plane.labels?.beta ?? 'β'];
  drawAxes($<HTMLCanvasElement>('xaxis'), $<HTMLCanvasElement>('yaxis'), v, names);
  drawOverlayNow(plane, res);
  return domain;
}

function drawOverlayNow(plane: Plane, res: number): void {
  const v: View = { alpha: plane.alpha, beta: plane.beta, res, size: PLOT_SIZE };
  const off = settings && settings.depth !== 0 && offDir ? ' (projected)' : '';
  const markers: Marker[] = (plane.markers ?? []).map((m) => ({ label: m.name + off, alpha: m.alpha, beta: m.beta }));
  const trajs = attackState.paths.map((path) =>
    path.map((x) => {
      const p = projectOntoPlane(plane, x);
      return [p.alpha, p.beta] as [number, number];
    }),
  );
  const bestIdx = attackState.drawn.indexOf(attackState.bestRestart);
  const centre: [number, number] = [(plane.alpha[0] + plane.alpha[1]) / 2, (plane.beta[0] + plane.beta[1]) / 2];
  drawOverlay($<HTMLCanvasElement>('overlay'), v, centre, markers, trajs, bestIdx);
}

function writeInfo(): void {
  const f = lastFrame;
  if (!f || !scenario) return;
  const r = fieldRange(f.field);
  const gnorm = gradientNormSq(scenario.gradient);
  const d = defenceReadout;
  $('info').textContent =
    `${f.res}² = ${(f.res * f.res).toLocaleString('en-US')} points · GPU+readback ${f.gpuMs.toFixed(1)} ms · draw ${f.drawMs.toFixed(1)} ms · frame ${frames}\n` +
    `L_r ∈ [${fmt(r.min)}, ${fmt(r.max)}]  (‖∇W‖²+‖∇b‖² = ${fmt(gnorm)})  ·  B=${scenario.B} D=${scenario.D} K=${scenario.K}\n` +
    `min L_r on the plane / ‖g‖² = ${fmt(r.min / gnorm)}  ·  L_r(truth) / ‖g‖² = ${d ? fmt(d.truthLoss / gnorm) : '—'}  ·  defence: ${d?.label ?? 'none'}`;
}

/** D·K above which the readout's SVD is deferred until the defence controls rest. */
const LARGE_SVD = 1 << 15;
let readoutTimer: ReturnType<typeof setTimeout> | undefined;

function writeDefenceInfo(s: Settings): void {
  const d = defenceReadout;
  if (!d) return;
  const lines = [
    d.label === 'none' ? 'undefended: the attack sees the exact gradient.' : `applied: ${d.label}`,
    `‖Δg‖/‖g‖ = ${fmt(d.relChange)}`,
    `L_r(truth) = ${fmt(d.truthLoss)} = ${fmt(d.truthLoss / d.gnorm2)}·‖g̃‖²`,
  ];
  if (d.reduced && d.outOfSubspace !== null) {
    lines.push(
      `out of subspace ‖(I−VVᵀ)∇W̃‖² = ${fmt(d.outOfSubspace)} (${fmt(d.outOfSubspaceShare ?? NaN)} of ‖∇W̃‖²)` +
        (s.optimizer === 'lm' ? ': lm works in the subspace and never fits it' : ' (lm only; this optimizer runs unreduced)'),
    );
  } else if (d.regime === '(computing…)') lines.push('out-of-subspace energy: computing…');
  else lines.push(`regime ${d.regime}: the attack runs unreduced`);
  $('defenceInfo').textContent = lines.join('\n');
}

/** Recolours the last field without touching the GPU (scale or colour map changed). */
function recolour(): void {
  const { s, errs } = readSettings();
  void errs;
  if (!settings || !lastFrame) return;
  settings = { ...settings, scale: s.scale, cmap: s.cmap };
  lastFrame.domain = draw(lastFrame.field, lastFrame.res, lastFrame.plane, settings);
}

// ---------------------------------------------------------------- attack
function resetAttack(): void {
  attackState.stop = true;
  attackState.runId++;
  attackState.series = { iterations: [], best: [], median: [] };
  attackState.paths = [];
  attackState.drawn = [];
  attackState.bestX = null;
  attackState.startX = null;
  attackState.summary = null;
  attackState.scenarioKey = scenarioKey;
  drawLossCurve($<HTMLCanvasElement>('losscurve'), attackState.series, 420, 220);
  $('attackInfo').textContent = 'No attack yet.';
}

/** Runs P restarts live: chunks of iterations per submit, status read back between chunks. */
async function runAttack(): Promise<AttackSummary> {
  if (attackState.running) throw new Error('an attack is already running');
  const ok = await applyControls();
  const { errs } = readSettings();
  for (const slot of ['P', 'iters', 'lr']) if (errs.has(slot)) throw new Error(errs.get(slot)!);
  if (!ok || !settings || !scenario) throw new Error('fix the highlighted controls first');
  const s = settings;
  const sc = scenario;
  const g = await ensureGpu();
  const { B, D } = sc;
  const BD = B * D;
  const P = s.P;
  // Normal init (scale 1), seeded from the scenario seed so runs are repeatable.
  const rng = new Rng((s.seed ^ 0xa77ac) >>> 0);
  const x0 = new Float64Array(P * BD);
  for (let i = 0; i < x0.length; i++) x0[i] = rng.normal();
  const gnorm = sc.gradient.W.reduce((a, x) => a + x * x, 0) + sc.gradient.b.reduce((a, x) => a + x * x, 0);
  // The library's default stopping rule: L_r ≤ tol·(‖∇W‖² + ‖∇b‖²).
  const tolAbs = ATTACK_DEFAULTS.tol * gnorm;
  let engine: EngineHandle | null = null;
  attackState.running = true;
  attackState.stop = false;
  attackState.scenarioKey = scenarioKey;
  attackState.defence = s.defence.label;
  const runId = ++attackState.runId;
  attackState.series = { iterations: [], best: [], median: [] };
  const drawn = Array.from({ length: Math.min(P, MAX_DRAWN_TRAJECTORIES) }, (_, i) => i);
  attackState.drawn = drawn;
  attackState.paths = drawn.map((p) => [Float32Array.from(x0.subarray(p * BD, (p + 1) * BD))]);
  attackState.bestRestart = 0;
  $<HTMLButtonElement>('attack').disabled = true;
  $<HTMLButtonElement>('stop').disabled = false;
  clearMessage('attack');
  const t0 = performance.now();
  let done = 0;
  let status: Awaited<ReturnType<EngineHandle['readStatus']>> | null = null;
  let best: Float32Array | null = null;
  try {
    // lm runs where the attack runs it: on the reduced problem (x = C·Vᵀ) when B ≤ K; the paths are lifted back.
    const red = s.optimizer === 'lm' ? analyseScenario(sc, 'auto').reduction : undefined;
    const work = red?.scenario ?? sc;
    engine = createAttackEngine(g.dlg.device, { layer: work, target: work.gradient, P, optimizer: s.optimizer, lr: s.lr, tolAbs, label: 'explorer.attack' });
    const liftBest = red ? (pts: Float32Array) => Float32Array.from(red.lift(pts, P)) : (pts: Float32Array) => pts;
    const loop = runLoop(engine, {
      inputs: red ? red.project(x0, P) : x0,
      // Chunks of ~80 ms: smooth live updates without a readback every iteration. lm takes a few large
      // steps: read back after each at first, so that its path shows every one.
      schedule: { kind: 'adaptive', iterations: s.iters, initial: s.optimizer === 'lm' ? 1 : 16, targetMs: 80 },
      signal: { get aborted() { return attackState.stop; } },
      bestPoints: true,
    });
    for await (const snap of loop) {
      status = snap.status;
      best = liftBest(snap.bestPoints!);
      if (gpu !== g) throw new Error('the GPU device was lost during the attack');
      if (attackState.runId !== runId) break; // the scenario changed: this run's results are moot
      done = snap.iteration;
      const bi = snap.best.index;
      attackState.bestRestart = bi;
      if (!drawn.includes(bi) && attackState.paths.length === drawn.length) {
        // The best restart is always drawn: it replaces the last slot (its path starts now).
        drawn[drawn.length - 1] = bi;
        attackState.paths[drawn.length - 1] = [];
      }
      drawn.forEach((p, k) => attackState.paths[k].push(best!.slice(p * BD, (p + 1) * BD)));
      attackState.series.iterations.push(done);
      attackState.series.best.push(status.bestLoss[bi]);
      attackState.series.median.push(medianOf(status.loss));
      drawLossCurve($<HTMLCanvasElement>('losscurve'), attackState.series, 420, 220, tolAbs);
      if (lastFrame) drawOverlayNow(lastFrame.plane, lastFrame.res);
      attackState.bestX = best.slice(bi * BD, (bi + 1) * BD);
      attackState.startX = x0.slice(bi * BD, (bi + 1) * BD);
      updateDigits();
      writeAttackInfo(status, bi, done, performance.now() - t0, false, false);
      if (snap.stop === 'all-finished') break; // all converged or frozen
      await new Promise((r) => setTimeout(r, 0));
    }
    if (!status || !best) throw new Error('the attack ran no iterations');
    if (attackState.runId !== runId) {
      return { P, iterations: done, bestLoss: NaN, relativeError: null, success: null, converged: 0, nonFinite: 0, wallMs: performance.now() - t0, stopped: true, defence: attackState.defence };
    }
    const summary = writeAttackInfo(status, attackState.bestRestart, done, performance.now() - t0, attackState.stop, true);
    attackState.summary = summary;
    if (settings.plane === 'attack') void applyControls();
    return summary;
  } catch (err) {
    showMessage('error', 'attack', `Attack failed: ${describeError(err)}`);
    if (err instanceof Error) (err as Error & { reported?: boolean }).reported = true;
    throw err;
  } finally {
    engine?.destroy();
    attackState.running = false;
    $<HTMLButtonElement>('attack').disabled = false;
    $<HTMLButtonElement>('stop').disabled = true;
  }
}

function writeAttackInfo(st: Awaited<ReturnType<EngineHandle['readStatus']>>, bi: number, done: number, ms: number, stopped: boolean, final: boolean): AttackSummary {
  const sc = scenario!;
  let relativeError: number | null = null;
  let success: boolean | null = null;
  let psnr = '';
  if (sc.inputs && attackState.bestX) {
    const side = imageSide(sc.D);
    const m = reconstructionMetrics(attackState.bestX, sc.inputs, { B: sc.B, D: sc.D, K: sc.K, reconLabels: sc.y, trueLabels: sc.y, psnrPeak: side ? psnrPeak(sc.inputs) : undefined });
    relativeError = m.relativeError;
    success = m.success;
    if (m.psnr !== undefined) psnr = ` · PSNR ${m.psnr.toFixed(1)} dB`;
  }
  let converged = 0;
  let nonFinite = 0;
  for (const x of st.status) {
    if (x === 1) converged++;
    else if (x === 2) nonFinite++;
  }
  const P = st.status.length;
  const summary: AttackSummary = { P, iterations: done, bestLoss: st.bestLoss[bi], relativeError, success, converged, nonFinite, wallMs: ms, stopped, defence: attackState.defence };
  $('attackInfo').textContent =
    `${stopped ? 'stopped' : final ? 'done' : 'running'} · ${done} iterations · P=${P} · ${(ms / 1000).toFixed(2)} s\n` +
    `best L_r ${fmt(summary.bestLoss)} (restart ${bi}) · converged ${converged}/${P} · non-finite ${nonFinite}\n` +
    (relativeError !== null ? `relative error ${fmt(relativeError)} → ${success ? 'SUCCESS (< 1e-3)' : 'not recovered'}${psnr}\n` : '') +
    `gradient attacked: ${attackState.defence === 'none' ? 'undefended' : attackState.defence}`;
  return summary;
}

function updateDigits(): void {
  const sc = scenario;
  const box = $('digits');
  const side = sc ? imageSide(sc.D) : undefined;
  if (!sc || !side || !sc.inputs) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const truth = sc.inputs;
  const lo = Math.min(...truth);
  const hi = Math.max(...truth);
  const fill = (id: string, x: ArrayLike<number> | null) => {
    const holder = $(id);
    while (holder.children.length < sc.B) holder.append(document.createElement('canvas'));
    while (holder.children.length > sc.B) holder.lastChild!.remove();
    for (let n = 0; n < sc.B; n++) {
      const c = holder.children[n] as HTMLCanvasElement;
      if (x) drawImage(c, x, n * sc.D, side, lo, hi, 7);
      else fitCanvas(c, side * 7, side * 7);
    }
  };
  fill('digitsTrue', truth);
  const recon = attackState.bestX && attackState.bestX.length === truth.length ? attackState.bestX : null;
  // Reconstructed rows are shown in the order matched to the true rows.
  if (recon) {
    const m = reconstructionMetrics(recon, truth, { B: sc.B, D: sc.D, K: sc.K, reconLabels: sc.y, trueLabels: sc.y });
    const ordered = new Float32Array(recon.length);
    m.assignment.forEach((j, i) => ordered.set(recon.subarray(i * sc.D, (i + 1) * sc.D), j * sc.D));
    fill('digitsRecon', ordered);
  } else fill('digitsRecon', null);
}

// ---------------------------------------------------------------- interaction
function wire(): void {
  const scenarioInputs = ['dataset', 'B', 'D', 'K', 'seed', 'n1', 'd1', 'n2', 'd2', 'planeSeed', 'span', 'res', 'P', 'iters', 'lr'];
  for (const id of scenarioInputs) {
    $(id).addEventListener('change', () => void applyControls());
    if ($(id).tagName === 'INPUT') $(id).addEventListener('input', () => void applyControls());
  }
  $('optimizer').addEventListener('change', () => {
    const opt = $<HTMLSelectElement>('optimizer').value as Settings['optimizer'];
    num('lr').value = String(DEFAULT_LR[opt]);
    num('lr').disabled = opt === 'lm';
    void applyControls();
  });
  $('plane').addEventListener('change', () => {
    num('span').value = String(defaultSpan($<HTMLSelectElement>('plane').value as Settings['plane']));
    void applyControls();
  });
  $('depth').addEventListener('input', () => void applyControls());
  $('defKind').addEventListener('change', () => {
    selectDefenceKind($<HTMLSelectElement>('defKind').value as DefenceKind);
    void applyControls();
  });
  // Dragging the slider: each position is a strength; renders are coalesced (the latest wins).
  // Slider events are throttled to one apply per 40 ms (each defends the gradient anew).
  $('defSlider').addEventListener('input', () => {
    const k = kindSpec($<HTMLSelectElement>('defKind').value as DefenceKind);
    if (k) num('defStrength').value = String(sliderToValue(k, Number(num('defSlider').value)));
    sliderPending ??= new Promise<void>((r) =>
      setTimeout(() => {
        sliderPending = null;
        void applyControls().finally(r);
      }, 40),
    );
  });
  for (const id of ['defStrength', 'defC', 'defSeed']) {
    $(id).addEventListener('input', () => void applyControls());
    $(id).addEventListener('change', () => void applyControls());
  }
  $('scale').addEventListener('change', recolour);
  $('cmap').addEventListener('change', recolour);
  $('attack').addEventListener('click', () =>
    void runAttack().catch((err) => {
      if (!(err as { reported?: boolean }).reported) showMessage('error', 'attack', `Attack not started: ${describeError(err)}`);
    }),
  );
  $('stop').addEventListener('click', () => (attackState.stop = true));

  const fig = $('figure');
  let drag: { x: number; y: number; pan: [number, number] } | null = null;
  fig.addEventListener('pointerdown', (e) => {
    if (!lastFrame) return;
    drag = { x: e.clientX, y: e.clientY, pan: [...view.pan] };
    fig.setPointerCapture(e.pointerId);
    fig.classList.add('dragging');
  });
  fig.addEventListener('pointermove', (e) => {
    if (!drag || !lastFrame) return;
    const p = lastFrame.plane;
    const da = ((e.clientX - drag.x) / PLOT_SIZE) * (p.alpha[1] - p.alpha[0]);
    const db = ((e.clientY - drag.y) / PLOT_SIZE) * (p.beta[1] - p.beta[0]);
    view.pan = [drag.pan[0] - da, drag.pan[1] + db];
    requestRender();
  });
  const end = () => {
    drag = null;
    fig.classList.remove('dragging');
  };
  fig.addEventListener('pointerup', end);
  fig.addEventListener('pointercancel', end);
  fig.addEventListener(
    'wheel',
    (e) => {
      if (!lastFrame || !basePlane) return;
      e.preventDefault();
      const rect = fig.getBoundingClientRect();
      const v: View = { alpha: lastFrame.plane.alpha, beta: lastFrame.plane.beta, res: lastFrame.res, size: PLOT_SIZE };
      const [a, b] = fromPx(v, e.clientX - rect.left, e.clientY - rect.top);
      const f = Math.exp(Math.sign(e.deltaY) * 0.15);
      const zoom = Math.min(1e3, Math.max(1e-6, view.zoom * f));
      const k = zoom / view.zoom;
      // Keep the point under the cursor fixed.
      const ma = (basePlane.alpha[0] + basePlane.alpha[1]) / 2 + view.pan[0];
      const mb = (basePlane.beta[0] + basePlane.beta[1]) / 2 + view.pan[1];
      view.pan = [view.pan[0] + (a - ma) * (1 - k), view.pan[1] + (b - mb) * (1 - k)];
      view.zoom = zoom;
      requestRender();
    },
    { passive: false },
  );
  fig.addEventListener('dblclick', () => {
    view.pan = [0, 0];
    view.zoom = 1;
    requestRender();
  });
}

// ---------------------------------------------------------------- test hooks
function toBase64(f: Float32Array): string {
  const bytes = new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function setControl(id: string, value: string | number): void {
  const el = $<HTMLInputElement | HTMLSelectElement>(id);
  if (!el) throw new Error(`no control #${id}`);
  el.value = String(value);
}

export interface DlgTestHooks {
  ready: Promise<void>;
  state(): unknown;
  set(values: Record<string, string | number>): Promise<{ ok: boolean; inline: Record<string, string> }>;
  idle(): Promise<void>;
  render(): Promise<void>;
  field(): { res: number; alpha: [number, number]; beta: [number, number]; base64: string } | null;
  scenario(): unknown;
  plane(): unknown;
  attack(values?: Record<string, string | number>): Promise<AttackSummary>;
  /** Chooses a defence as the user does (kind, then strength: the kind's default when left out). */
  defence(v: { kind: DefenceKind; strength?: number | string; seed?: number; c?: number | string }): Promise<{ ok: boolean; inline: Record<string, string> }>;
  loseDevice(): void;
  injectError(kind: 'validation' | 'shader'): Promise<void>;
  pan(da: number, db: number): void;
  frames(n: number): Promise<{ frameMs: number[]; gpuMs: number[]; drawMs: number[] }>;
  profile(n: number, opts?: SurfaceOptions): Promise<Record<string, number[]>>;
}

function hooks(ready: Promise<void>): DlgTestHooks {
  return {
    ready,
    state: () => ({
      adapter: gpu?.dlg.adapterName ?? null,
      webgpu: !!(navigator as Navigator & { gpu?: GPU }).gpu,
      deviceGeneration: deviceGen,
      frames,
      rendering: !!pumping,
      recovering: !!recovering,
      attackRunning: attackState.running,
      attackPoints: attackState.series.iterations.length,
      digitsShown: !$('digits').hidden,
      messages: messages.map(({ level, kind, text }) => ({ level, kind, text })),
      inline: Object.fromEntries(inlineErrors),
      res: lastFrame?.res ?? null,
      lastGpuMs: lastFrame?.gpuMs ?? null,
      lastDrawMs: lastFrame?.drawMs ?? null,
      defence: defenceReadout ? { ...defenceReadout, fieldMin: lastFrame ? fieldRange(lastFrame.field).min : null } : null,
    }),
    async set(values) {
      for (const [k, v] of Object.entries(values)) setControl(k, v);
      const ok = await applyControls();
      await idle();
      return { ok, inline: Object.fromEntries(inlineErrors) };
    },
    idle,
    async render() {
      requestRender();
      await idle();
    },
    field: () => (lastFrame ? { res: lastFrame.res, alpha: lastFrame.plane.alpha, beta: lastFrame.plane.beta, base64: toBase64(lastFrame.field) } : null),
    scenario: () => (scenario ? scenarioToJson(scenario) : null),
    plane: () => {
      if (!lastFrame || !scenario) return null;
      return planeToJson(lastFrame.plane, scenario.B, scenario.D);
    },
    async attack(values) {
      if (values) for (const [k, v] of Object.entries(values)) setControl(k, v);
      return runAttack();
    },
    async defence(v) {
      selectDefenceKind(v.kind, v.strength);
      if (v.seed !== undefined) num('defSeed').value = String(v.seed);
      if (v.c !== undefined) num('defC').value = String(v.c);
      const ok = await applyControls();
      await idle();
      return { ok, inline: Object.fromEntries(inlineErrors) };
    },
    loseDevice() {
      if (!gpu) throw new Error('no device to lose');
      gpu.dlg.device.destroy(); // device.lost resolves; onDeviceLost treats it like a real loss
    },
    async injectError(kind) {
      if (!gpu) throw new Error('no device');
      const d = gpu.dlg.device;
      if (kind === 'validation') d.createBuffer({ label: 'explorer.injected-invalid', size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE });
      else d.createShaderModule({ label: 'explorer.injected-broken', code: 'fn main( { this is not WGSL' });
      // Chromium delivers uncaptured errors when the device next ticks: make it tick now.
      await d.queue.onSubmittedWorkDone();
    },
    pan(da, db) {
      view.pan = [view.pan[0] + da, view.pan[1] + db];
      requestRender();
    },
    /** n back-to-back frames while the slice centre moves (as when dragging); per-frame wall times. */
    async frames(n) {
      await idle();
      const frameMs: number[] = [];
      const gpuMs: number[] = [];
      const drawMs: number[] = [];
      const p = basePlane!;
      const step = (p.alpha[1] - p.alpha[0]) / 200;
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        view.pan = [view.pan[0] + (i % 2 ? -step : step), view.pan[1] + step / 2];
        requestRender();
        await idle();
        frameMs.push(performance.now() - t0);
        gpuMs.push(lastFrame!.gpuMs);
        drawMs.push(lastFrame!.drawMs);
      }
      return { frameMs, gpuMs, drawMs };
    },
    /** Where a frame's time goes: handle creation, GPU render+readback of an unchanged plane, colour map + draw. */
    async profile(n, opts) {
      await idle();
      const g = await ensureGpu();
      const plane = viewPlane();
      const out: Record<string, number[]> = { createMs: [], renderMs: [], drawMs: [], submitDoneMs: [] };
      for (let i = 0; i < n; i++) {
        let t = performance.now();
        const h = createSurface(g.dlg.device, scenario!, plane, settings!.res, opts ?? {});
        out.createMs.push(performance.now() - t);
        t = performance.now();
        const f = (await h.render())!;
        out.renderMs.push(performance.now() - t);
        t = performance.now();
        draw(f, settings!.res, plane, settings!);
        out.drawMs.push(performance.now() - t);
        t = performance.now();
        await g.dlg.device.queue.onSubmittedWorkDone();
        out.submitDoneMs.push(performance.now() - t);
        h.destroy();
      }
      return out;
    },
  };
}

// ---------------------------------------------------------------- start
async function start(): Promise<void> {
  wire();
  drawLossCurve($<HTMLCanvasElement>('losscurve'), attackState.series, 420, 220);
  const nav = navigator as Navigator & { gpu?: GPU };
  if (!nav.gpu) {
    noWebGpuHelp(window.isSecureContext ? 'This browser does not expose navigator.gpu.' : 'This page is not a secure context, so navigator.gpu is hidden.');
    throw new Error('WebGPU is not available (navigator.gpu is undefined)');
  }
  try {
    await initDevice();
  } catch (err) {
    noWebGpuHelp(`No WebGPU adapter or device could be obtained: ${describeError(err).split('\n')[0]}`);
    throw err;
  }
  await applyControls();
  await idle();
}

const ready = start();
ready.catch((err) => console.error(`[dlg explorer] ${describeError(err)}`));
(window as unknown as { __dlgTest: DlgTestHooks }).__dlgTest = hooks(ready);
window.addEventListener('error', (e) => showMessage('error', 'script', `Unexpected error: ${e.message}`));
window.addEventListener('unhandledrejection', (e) => showMessage('error', 'script', `Unexpected error: ${describeError(e.reason)}`));
