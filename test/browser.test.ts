// End-to-end: the explorer page in real headless Chromium (Debian chromium + playwright-core, WebGPU on
// SwiftShader), served from 127.0.0.1 on an ephemeral port. No skip path: no browser or no adapter fails.
import { mkdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { coordinatePlane, explicitPlane, randomPlane } from '../src/surface/plane.js';
import { simulateScenario } from '../src/core/datasets.js';
import { defendScenario, parseDefenceSpecs } from '../src/core/defence.js';
import { parseScenario } from '../src/core/scenario.js';
import { surface, surfaceCpuAt } from '../src/surface/surface.js';
import { type DemoSession, decodeF32, pageReady, startDemoSession } from './browser-harness.js';
import { expectClose, useGpu } from './helpers.js';

interface Hooks {
  ready: Promise<void>;
  state(): State;
  set(v: Record<string, string | number>): Promise<{ ok: boolean; inline: Record<string, string> }>;
  idle(): Promise<void>;
  render(): Promise<void>;
  field(): { res: number; alpha: [number, number]; beta: [number, number]; base64: string } | null;
  scenario(): unknown;
  plane(): unknown;
  attack(v?: Record<string, string | number>): Promise<{ relativeError: number | null; success: boolean | null; bestLoss: number; iterations: number; P: number; stopped: boolean; defence: string }>;
  defence(v: { kind: string; strength?: number | string; seed?: number; c?: number | string }): Promise<{ ok: boolean; inline: Record<string, string> }>;
  loseDevice(): void;
  injectError(kind: 'validation' | 'shader'): Promise<void>;
  pan(da: number, db: number): void;
}
interface State {
  adapter: string | null;
  deviceGeneration: number;
  frames: number;
  recovering: boolean;
  attackPoints: number;
  digitsShown: boolean;
  messages: { level: string; kind: string; text: string }[];
  inline: Record<string, string>;
  res: number | null;
  attackRunning: boolean;
  defence: {
    label: string;
    relChange: number;
    gnorm2: number;
    truthLoss: number;
    regime: string;
    reduced: boolean;
    outOfSubspace: number | null;
    fieldMin: number | null;
  } | null;
}

const T = <R, A = undefined>(page: Page, fn: (h: Hooks, a: A) => R | Promise<R>, arg?: A): Promise<R> =>
  page.evaluate(
    ([src, a]) => {
      const f = new Function('h', 'a', `return (${src})(h, a);`) as (h: unknown, a: unknown) => unknown;
      return f((window as unknown as { __dlgTest: unknown }).__dlgTest, a);
    },
    [fn.toString(), arg] as const,
  ) as Promise<R>;

describe('explorer page in headless Chromium', () => {
  const gpu = useGpu();
  let session: DemoSession;
  let page: Page;

  beforeAll(async () => {
    session = await startDemoSession();
    page = await session.newPage({ viewport: { width: 1600, height: 960 } });
    await pageReady(page);
  });
  afterAll(async () => {
    await session?.close();
  });

  it('loads, gets a WebGPU adapter and renders a surface', async () => {
    const st = await T(page, (h) => h.state());
    expect(st.adapter, 'the page must get a WebGPU adapter (navigator.gpu)').toBeTruthy();
    expect(await page.textContent('#adapter')).toContain(st.adapter!);
    expect(st.frames).toBeGreaterThanOrEqual(1);
    expect(st.messages.filter((m) => m.level === 'error')).toEqual([]);
    const f = await T(page, (h) => h.field());
    expect(f).not.toBeNull();
    const field = decodeF32(f!.base64);
    expect(field.length).toBe(f!.res * f!.res);
    expect(field.every((v) => Number.isFinite(v) && v >= 0)).toBe(true);
    expect(session.problems).toEqual([]);
  });

  it('the surface read from the page matches the Node (dawn/lavapipe) render of the same scenario and plane', async () => {
    const setups: Record<string, string | number>[] = [
      { dataset: 'gaussian', B: 2, D: 1, K: 1, seed: 1, plane: 'coords', n1: 0, d1: 0, n2: 1, d2: 0, res: 97 },
      { dataset: 'gaussian', B: 3, D: 5, K: 2, seed: 9, plane: 'random', planeSeed: 4, span: 1.5, res: 64 },
    ];
    for (const setup of setups) {
      const res = setup.res as number;
      const r = await T(page, (h, v) => h.set(v), setup);
      expect(r.ok, JSON.stringify(r.inline)).toBe(true);
      const f = (await T(page, (h) => h.field()))!;
      expect(f.res).toBe(setup.res);
      const pageField = decodeF32(f.base64);
      const sc = parseScenario(await T(page, (h) => h.scenario()));
      expect([sc.B, sc.D, sc.K]).toEqual([setup.B, setup.D, setup.K]);
      const plane = explicitPlane(await T(page, (h) => h.plane()), { B: sc.B, D: sc.D });
      // The page's plane is the one its controls describe (the same construction in Node).
      const ref =
        setup.plane === 'coords'
          ? coordinatePlane(sc, { a: [setup.n1 as number, setup.d1 as number], b: [setup.n2 as number, setup.d2 as number] })
          : randomPlane(sc, { seed: setup.planeSeed as number, span: setup.span as number });
      // (Math.log/sin/cos in Rng.normal may differ by an ulp between Chromium's and Node's V8.)
      const ulps = { abs: 1e-15, rel: 1e-13 };
      expectClose(plane.center, ref.center, ulps, 'plane.center');
      expectClose(plane.u, ref.u, ulps, 'plane.u');
      expectClose(plane.v, ref.v, ulps, 'plane.v');
      // And the page's scenario is the one the seed names in Node.
      const nodeSc = simulateScenario({ dataset: 'gaussian', B: setup.B as number, D: setup.D as number, K: setup.K as number, seed: setup.seed as number });
      expectClose(sc.W, nodeSc.W, ulps, 'scenario W');
      expectClose(sc.inputs!, nodeSc.inputs!, ulps, 'scenario inputs');
      expectClose(sc.y, nodeSc.y, { abs: 0, rel: 0 }, 'scenario labels');
      const nodeField = await surface(gpu(), sc, plane, res);
      let max = 0;
      for (const v of nodeField) max = Math.max(max, v);
      // Two f32 GPU stacks (SwiftShader vs lavapipe): differences are a few ulps of exp and sums.
      expectClose(pageField, nodeField, { abs: 1e-6 * max, rel: 1e-4 }, `page field vs Node field (${setup.plane})`);
      // And both against the float64 CPU reference at a few grid points.
      const pts: [number, number][] = [
        [0, 0],
        [res - 1, res - 1],
        [17, 40],
        [res >> 1, res >> 1],
      ];
      const cpu = surfaceCpuAt(sc, plane, res, pts);
      expectClose(
        pts.map(([i, j]) => pageField[j * res + i]),
        cpu,
        { abs: 1e-6 * max, rel: 1e-3 },
        'page field vs float64 reference',
      );
    }
  });

  it('a B=1 attack in the page recovers the input (relative error < 1e-3) and draws its loss curve', async () => {
    const r = await T(page, (h) => h.set({ dataset: 'gaussian', B: 1, D: 4, K: 2, seed: 3, plane: 'coords', n1: 0, d1: 0, n2: 0, d2: 1, res: 128 }));
    expect(r.ok, JSON.stringify(r.inline)).toBe(true);
    const a = await T(page, (h) => h.attack({ P: 8, iters: 3000, optimizer: 'adam', lr: 0.05 }));
    expect(a.P).toBe(8);
    expect(a.relativeError).not.toBeNull();
    expect(a.relativeError!).toBeLessThan(1e-3);
    expect(a.success).toBe(true);
    const st = await T(page, (h) => h.state());
    expect(st.attackPoints).toBeGreaterThan(1);
    expect(await page.textContent('#attackInfo')).toContain('SUCCESS');
  });

  it('lm, the page default, runs on the reduced problem and draws its lifted path on the surface', async () => {
    const r = await T(page, (h) => h.set({ dataset: 'gaussian', B: 2, D: 8, K: 3, seed: 5, plane: 'coords', n1: 0, d1: 0, n2: 1, d2: 0, res: 64 }));
    expect(r.ok, JSON.stringify(r.inline)).toBe(true);
    expect(await page.getAttribute('#optimizer option[value="lm"]', 'selected')).not.toBeNull(); // the page's default
    await page.selectOption('#optimizer', 'lm');
    expect(await page.isDisabled('#lr')).toBe(true); // lm has no learning rate
    const a = await T(page, (h) => h.attack({ P: 8, iters: 60 }));
    expect(a.relativeError, JSON.stringify(a)).not.toBeNull();
    expect(a.relativeError!).toBeLessThan(1e-3);
    expect(a.iterations).toBeLessThan(60); // every restart converged or stalled early: tens of iterations, not thousands
    const st = await T(page, (h) => h.state());
    expect(st.attackPoints).toBeGreaterThan(1);
  });

  // The defence control: (B, D, K) = (2, 8, 3) is the subspace regime (16 unknowns, 27 equations), so a
  // defended gradient has no exact fit and the basin's floor lifts off zero.
  const defScenario = { dataset: 'gaussian', B: 2, D: 8, K: 3, seed: 5, plane: 'coords', n1: 0, d1: 0, n2: 1, d2: 0, res: 64 };

  it('defence: growing noise lifts L_r at the truth off zero, re-renders, and reports ‖Δg‖/‖g‖ and the out-of-subspace energy', async () => {
    expect((await T(page, (h, v) => h.set(v), defScenario)).ok).toBe(true);
    expect((await T(page, (h) => h.defence({ kind: 'none' }))).ok).toBe(true);
    const st0 = await T(page, (h) => h.state());
    const d0 = st0.defence!;
    expect(d0.label).toBe('none');
    expect(d0.relChange).toBe(0);
    expect(d0.truthLoss).toBeLessThanOrEqual(1e-12 * d0.gnorm2);
    expect([d0.regime, d0.reduced]).toEqual(['subspace', true]);
    let prev = st0;
    for (const sigma of [1e-3, 1e-2, 1e-1]) {
      const r = await T(page, (h, a) => h.defence({ kind: 'noise-gauss-rel', strength: a, seed: 1 }), sigma);
      expect(r.ok, JSON.stringify(r.inline)).toBe(true);
      const st = await T(page, (h) => h.state());
      const d = st.defence!;
      expect(d.label).toBe(`noise:gaussian:rel:${sigma} (seed 1)`);
      // Relative noise σ·RMS(g) per entry: ‖Δg‖ ≈ σ‖g‖.
      expect(d.relChange).toBeGreaterThan(0.5 * sigma);
      expect(d.relChange).toBeLessThan(2 * sigma);
      expect(d.truthLoss).toBeGreaterThan(prev.defence!.truthLoss);
      expect(d.outOfSubspace!).toBeGreaterThan(0);
      expect(st.frames, 'the surface re-renders for each strength').toBeGreaterThan(prev.frames);
      prev = st;
    }
    const d = prev.defence!;
    expect(d.truthLoss).toBeGreaterThan(1e-3 * d.gnorm2); // ≈ σ² = 1e-2 of ‖g‖²: clearly off zero
    expect(d.fieldMin! / d.gnorm2).toBeGreaterThan(st0.defence!.fieldMin! / d0.gnorm2);
    const info = (await page.textContent('#defenceInfo'))!;
    expect(info).toContain(`‖Δg‖/‖g‖ = ${d.relChange.toExponential(3)}`);
    expect(info).toContain('out of subspace');
    expect(await page.textContent('#info')).toMatch(/min L_r on the plane \/ ‖g‖² = .*defence: noise:gaussian:rel:0\.1/s);
    // The page applies src/core/defence.ts: the same gradient as `dlg defend --defence noise:gaussian:rel:0.1 --seed 1`.
    const sc = parseScenario(await T(page, (h) => h.scenario()));
    expect(sc.defence?.map((x) => x.name)).toEqual(['noise']);
    const node = defendScenario(simulateScenario({ dataset: 'gaussian', B: 2, D: 8, K: 3, seed: 5 }), parseDefenceSpecs(['noise:gaussian:rel:0.1'], 1));
    expectClose(sc.gradient.W, node.gradient.W, { abs: 1e-15, rel: 1e-12 }, 'defended ∇W');
    expectClose(sc.gradient.b, node.gradient.b, { abs: 1e-15, rel: 1e-12 }, 'defended ∇b');
    expect((await T(page, (h) => h.defence({ kind: 'none' }))).ok).toBe(true);
    expect((await T(page, (h) => h.state())).defence!.truthLoss).toBeLessThanOrEqual(1e-12 * d0.gnorm2);
  });

  it('defence: lm attacks the defended gradient (larger but finite error); a defence change stops a running attack', async () => {
    expect((await T(page, (h, v) => h.set(v), defScenario)).ok).toBe(true);
    expect((await T(page, (h) => h.defence({ kind: 'none' }))).ok).toBe(true);
    const a0 = await T(page, (h) => h.attack({ P: 8, iters: 60, optimizer: 'lm' }));
    expect(a0.defence).toBe('none');
    expect(a0.relativeError!).toBeLessThan(1e-3);
    expect((await T(page, (h) => h.defence({ kind: 'noise-gauss-rel', strength: 1e-3, seed: 1 }))).ok).toBe(true);
    const a1 = await T(page, (h) => h.attack({ P: 8, iters: 60 }));
    expect(a1.defence).toBe('noise:gaussian:rel:0.001 (seed 1)');
    expect(a1.relativeError, JSON.stringify(a1)).not.toBeNull();
    expect(Number.isFinite(a1.relativeError!)).toBe(true);
    expect(a1.relativeError!).toBeGreaterThan(a0.relativeError!);
    expect(a1.relativeError!).toBeLessThan(0.5);
    expect(await page.textContent('#attackInfo')).toContain('gradient attacked: noise:gaussian:rel:0.001 (seed 1)');
    // Changing the defence while an attack runs stops it (its result names the gradient it ran on). Adam
    // runs all 5000 iterations on the noisy gradient, where lm's restarts may all stall before the change
    // lands on a loaded machine.
    const stopped = await T(page, async (h) => {
      const run = h.attack({ P: 8, iters: 5000, optimizer: 'adam' });
      for (let i = 0; i < 400; i++) {
        const st = h.state() as unknown as { attackRunning: boolean; attackPoints: number };
        if (st.attackRunning && st.attackPoints > 0) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      await h.defence({ kind: 'noise-gauss-rel', strength: 1e-2, seed: 1 });
      return run;
    });
    expect(stopped.stopped).toBe(true);
    expect(stopped.iterations).toBeLessThan(5000);
    expect(stopped.defence).toBe('noise:gaussian:rel:0.001 (seed 1)');
    expect((await T(page, (h) => h.set({ optimizer: 'lm' }))).ok).toBe(true);
    const st = await T(page, (h) => h.state());
    expect(st.messages.find((m) => m.kind === 'defence')?.text).toMatch(/changed to noise:gaussian:rel:0\.01.*was stopped/);
    expect(st.messages.filter((m) => m.level === 'error')).toEqual([]);
    await page.click('#messages .msg[data-kind="defence"] button');
    expect((await T(page, (h) => h.defence({ kind: 'none' }))).ok).toBe(true);
  });

  it('defence: a bad strength gets an inline message naming the field and the page keeps working', async () => {
    expect((await T(page, (h, v) => h.set(v), defScenario)).ok).toBe(true);
    const before = (await T(page, (h) => h.state())).frames;
    const bad = await T(page, (h) => h.defence({ kind: 'prune', strength: 1.5 }));
    expect(bad.ok).toBe(false);
    const re = /defence strength prune:1\.5 \(p\): expected a number in \[0, 1\), found "1\.5"/;
    expect(bad.inline.defStrength).toMatch(re);
    expect(await page.textContent('#err-defStrength')).toMatch(re);
    expect(await page.isVisible('#err-defStrength')).toBe(true);
    const badC = await T(page, (h) => h.defence({ kind: 'dpsgd', strength: 0.1, c: 0 }));
    expect(badC.ok).toBe(false);
    expect(badC.inline.defC).toMatch(/clip norm c dpsgd:0:0\.1 \(c\): expected a number in \(0, ∞\), found "0"/);
    expect(badC.inline.defStrength).toBeUndefined();
    // The user drags the slider back into range: the message goes and the page renders the pruned gradient.
    await T(page, (h) => h.defence({ kind: 'prune', strength: 1.5 }));
    await page.$eval('#defSlider', (el) => {
      (el as HTMLInputElement).value = '500';
      el.dispatchEvent(new Event('input', { bubbles: true }));
    });
    await T(page, (h) => h.idle());
    const p = Number(await page.inputValue('#defStrength'));
    expect(p).toBeGreaterThan(0.4);
    expect(p).toBeLessThan(0.6);
    const st = await T(page, (h) => h.state());
    expect(st.inline).toEqual({});
    expect(st.defence!.label).toBe(`prune:${p}`);
    expect(st.defence!.relChange).toBeGreaterThan(0);
    expect(st.frames).toBeGreaterThan(before);
    expect(st.messages.filter((m) => m.level === 'error')).toEqual([]);
    expect((await T(page, (h) => h.defence({ kind: 'none' }))).ok).toBe(true);
  });

  it('digits: shows the true and the reconstructed 8×8 images', async () => {
    const r = await T(page, (h) => h.set({ dataset: 'digits', B: 2, seed: 2, plane: 'coords', n1: 0, d1: 20, n2: 1, d2: 20, res: 64 }));
    expect(r.ok, JSON.stringify(r.inline)).toBe(true);
    expect(await page.isVisible('#digits')).toBe(true);
    expect(await page.locator('#digitsTrue canvas').count()).toBe(2);
    const a = await T(page, (h) => h.attack({ P: 4, iters: 200, optimizer: 'adam', lr: 0.05 }));
    expect(a.iterations).toBeGreaterThan(0);
    expect(await page.locator('#digitsRecon canvas').count()).toBe(2);
    // The reconstruction canvases hold an 8×8 image.
    const w = await page.evaluate(() => (document.querySelector('#digitsRecon canvas') as HTMLCanvasElement).width);
    expect(w).toBe(8);
  });

  it('out-of-range controls get inline messages and the page keeps working', async () => {
    await T(page, (h) => h.set({ dataset: 'gaussian', B: 2, D: 1, K: 1, seed: 1, plane: 'coords', n1: 0, d1: 0, n2: 1, d2: 0, res: 64 }));
    const before = (await T(page, (h) => h.state())).frames;
    const good: Record<string, number> = { B: 2, D: 1, K: 1, res: 64, n2: 1 };
    const cases: [Record<string, string | number>, string, RegExp][] = [
      [{ B: 0 }, 'B', /B \(batch size\): expected an integer in \[1, 64\], found "0"/],
      [{ B: 1000 }, 'B', /\[1, 64\].*"1000"/],
      [{ D: -3 }, 'D', /D \(features\).*\[1, 4096\].*"-3"/],
      [{ K: 2.5 }, 'K', /K \(outputs\).*"2\.5"/],
      [{ res: 4096 }, 'res', /resolution: expected an integer in \[2, 2048\], found "4096"/],
      [{ res: 1 }, 'res', /\[2, 2048\].*"1"/],
      [{ n2: 7 }, 'coords', /coords\.b\[0\].*\[0, 1\]/],
    ];
    for (const [bad, slot, re] of cases) {
      const r = await T(page, (h, v) => h.set(v), bad);
      expect(r.ok, `${JSON.stringify(bad)} should be rejected`).toBe(false);
      expect(r.inline[slot], `inline message for ${JSON.stringify(bad)}`).toMatch(re);
      expect(await page.textContent(`#err-${slot}`)).toMatch(re);
      expect(await page.isVisible(`#err-${slot}`)).toBe(true);
      // Restore the control; the page renders again and the message goes away.
      const fix = Object.fromEntries(Object.keys(bad).map((k) => [k, good[k]]));
      const ok = await T(page, (h, v) => h.set(v), fix);
      expect(ok.ok, JSON.stringify(ok.inline)).toBe(true);
      expect(ok.inline).toEqual({});
    }
    // Attack-only controls: an inline message, and the Attack button explains instead of failing silently.
    const r = await T(page, (h) => h.set({ P: 0 }));
    expect(r.inline.P).toMatch(/restarts P: expected an integer in \[1, 4096\], found "0"/);
    await page.click('#attack');
    await page.waitForFunction(() => document.querySelector('#messages .msg[data-kind="attack"]') !== null, undefined, { timeout: 20_000 });
    expect(await page.textContent('#messages .msg[data-kind="attack"]')).toMatch(/Attack not started: restarts P/);
    await page.click('#messages .msg[data-kind="attack"] button');
    expect((await T(page, (h) => h.set({ P: 8 }))).inline).toEqual({});
    const st = await T(page, (h) => h.state());
    expect(st.frames).toBeGreaterThan(before);
    expect(st.messages.filter((m) => m.level === 'error')).toEqual([]);
  });

  it('dragging the surface with the mouse moves the slice centre and re-renders', async () => {
    await T(page, (h) => h.set({ dataset: 'gaussian', B: 2, D: 1, K: 1, seed: 1, plane: 'coords', n1: 0, d1: 0, n2: 1, d2: 0, res: 128 }));
    const f0 = (await T(page, (h) => h.field()))!;
    const frames0 = (await T(page, (h) => h.state())).frames;
    const box = (await page.locator('#figure').boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    for (let i = 1; i <= 5; i++) await page.mouse.move(box.x + box.width / 2 - 20 * i, box.y + box.height / 2 + 10 * i);
    await page.mouse.up();
    await T(page, (h) => h.idle());
    const f1 = (await T(page, (h) => h.field()))!;
    expect((await T(page, (h) => h.state())).frames).toBeGreaterThan(frames0);
    // Dragged left and down: the window moved to larger α and larger β.
    expect(f1.alpha[0]).toBeGreaterThan(f0.alpha[0]);
    expect(f1.beta[0]).toBeGreaterThan(f0.beta[0]);
    expect(f1.alpha[1] - f1.alpha[0]).toBeCloseTo(f0.alpha[1] - f0.alpha[0], 9);
    await page.dblclick('#figure'); // reset the view
    await T(page, (h) => h.idle());
    expect((await T(page, (h) => h.field()))!.alpha).toEqual(f0.alpha);
  });

  it('WebGPU validation and shader errors show a message and the page keeps rendering', async () => {
    for (const kind of ['validation', 'shader'] as const) {
      await T(page, (h, k) => h.injectError(k), kind);
      await page.waitForFunction(() => document.querySelector('#messages .msg[data-kind="gpu-validation"]') !== null, undefined, { timeout: 20_000 });
      expect(await page.textContent('#messages')).toMatch(/WebGPU validation error/);
      await page.click('#messages .msg[data-kind="gpu-validation"] button'); // dismiss
    }
    const before = (await T(page, (h) => h.state())).frames;
    await T(page, (h) => h.render());
    expect((await T(page, (h) => h.state())).frames).toBe(before + 1);
  });

  it('a device lost mid-render shows a message, the device is recreated and rendering resumes', async () => {
    await T(page, (h) => h.set({ res: 1024 }));
    const st0 = await T(page, (h) => h.state());
    // Start a render and destroy the device while its GPU work is in flight (a 1024² frame takes
    // well over 10 ms on SwiftShader).
    const wasRendering = await T(page, async (h) => {
      h.pan(0.05, 0);
      await new Promise((r) => setTimeout(r, 10));
      const rendering = (h.state() as unknown as { rendering: boolean }).rendering;
      h.loseDevice();
      return rendering;
    });
    expect(wasRendering).toBe(true);
    await page.waitForFunction(() => document.querySelector('#messages .msg[data-kind="device-lost"]') !== null, undefined, { timeout: 20_000 });
    await T(page, (h) => h.idle());
    const st1 = await T(page, (h) => h.state());
    expect(st1.deviceGeneration).toBe(st0.deviceGeneration + 1);
    expect(st1.messages.find((m) => m.kind === 'device-lost')?.text).toMatch(/lost.*recreated/s);
    expect(st1.recovering).toBe(false);
    // Rendering works on the new device.
    await T(page, (h) => h.pan(0.05, 0));
    await T(page, (h) => h.idle());
    const st2 = await T(page, (h) => h.state());
    expect(st2.frames).toBeGreaterThan(st0.frames);
    expect(st2.messages.filter((m) => m.level === 'error'), 'no error left once rendering resumed').toEqual([]);
    expect(decodeF32((await T(page, (h) => h.field()))!.base64).length).toBe(1024 * 1024);
    // The attack engine works on the new device too.
    const a = await T(page, (h) => h.attack({ P: 2, iters: 50 }));
    expect(a.iterations).toBe(50);
  });

  it('saves a screenshot', async () => {
    await T(page, (h) => h.set({ dataset: 'gaussian', B: 2, D: 1, K: 1, seed: 1, plane: 'coords', n1: 0, d1: 0, n2: 1, d2: 0, span: 2, res: 512 }));
    await T(page, (h) => h.attack({ P: 8, iters: 1500, optimizer: 'adam', lr: 0.05 }));
    await T(page, (h) => h.idle());
    // Dismiss earlier tests' notices so the picture shows the page as a user first sees it.
    while ((await page.locator('#messages .msg button').count()) > 0) await page.locator('#messages .msg button').first().click();
    mkdirSync('out', { recursive: true });
    const path = resolve('out/browser-explorer.png');
    await page.screenshot({ path, fullPage: true });
    expect(statSync(path).size).toBeGreaterThan(20_000);
    console.log(`screenshot: ${path}`);
  });

  it('a data table that cannot be fetched gets a message, and the page recovers when it can', async () => {
    const p = await session.newPage();
    await pageReady(p);
    await p.route('**/data/iris.csv', (route) => route.fulfill({ status: 404, body: 'gone' }));
    const r = await T(p, (h) => h.set({ dataset: 'iris', B: 2, res: 32 }));
    expect(r.ok).toBe(false);
    const msg = await p.textContent('#messages .msg[data-kind="scenario"]');
    expect(msg).toMatch(/Could not build the scenario: could not fetch data\/iris\.csv: HTTP 404/);
    await p.unroute('**/data/iris.csv');
    const ok = await T(p, (h) => h.set({ dataset: 'iris', B: 2, res: 32 }));
    expect(ok.ok, JSON.stringify(ok.inline)).toBe(true);
    expect(await p.locator('#messages .msg[data-kind="scenario"]').count()).toBe(0);
    expect((await T(p, (h) => h.state())).res).toBe(32);
    await p.close();
    // The 404 it logged is this test's doing.
    session.problems.splice(0);
  });

  it('without WebGPU the page says what to enable', async () => {
    const p = await session.newPage({ noWebGpu: true });
    await p.waitForSelector('#nogpu:not([hidden])', { timeout: 20_000 });
    const text = (await p.textContent('#nogpu'))!;
    expect(text).toContain('WebGPU is not available');
    expect(text).toContain('chrome://flags/#enable-unsafe-webgpu');
    expect(text).toContain('--enable-unsafe-webgpu');
    expect(await p.textContent('#adapter')).toContain('none');
    await p.close();
    // That page's expected failure is not one of the main page's problems.
    session.problems.splice(0);
  });

  it('the library bundle (dist/browser/dlg.js) runs on navigator.gpu in a page', async () => {
    // The README's example, as a string so the test runner does not rewrite import() for Node.
    const r = (await page.evaluate(`(async () => {
      const lib = await import('/lib/dlg.js');
      const dlg = await lib.requestBrowserDevice();
      const scenario = lib.simulateScenario({ dataset: 'gaussian', B: 1, D: 3, K: 2, seed: 4 });
      const plane = lib.randomPlane(scenario, { seed: 1 });
      const field = await lib.surface(dlg.device, scenario, plane, 64);
      const result = await lib.attack(dlg.device, scenario, { restarts: 16, iterations: 1000 });
      const red = lib.reduceScenario(lib.simulateScenario({ dataset: 'gaussian', B: 2, D: 9, K: 3, seed: 1 }));
      const out = { adapter: dlg.adapterName, B: scenario.B, D: scenario.D, n: field.length, finite: field.every(Number.isFinite),
        relativeError: result.metrics.relativeError, optimizer: result.optimizer, regime: result.regime.regime, reducedD: red.scenario.D };
      dlg.destroy();
      return out;
    })()`)) as { adapter: string; B: number; D: number; n: number; finite: boolean; relativeError: number; optimizer: string; regime: string; reducedD: number };
    expect(r.adapter.length).toBeGreaterThan(0);
    expect([r.B, r.D]).toEqual([1, 3]);
    expect(r.n).toBe(64 * 64);
    expect(r.finite).toBe(true);
    expect(r.relativeError).toBeLessThan(1e-3);
    // The default attack is lm in the subspace regime; reduceScenario is part of the bundle.
    expect([r.optimizer, r.regime, r.reducedD]).toEqual(['lm', 'subspace', 2]);
  });
});
