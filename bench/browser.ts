/**
 * Frame rate of the explorer page in headless Chromium (WebGPU on SwiftShader): (B,D,K) = (2,1,1),
 * a 1024² surface re-rendered repeatedly while the slice centre moves, as when dragging. Target ≥ 10 fps.
 *
 * A frame is everything the user waits for: plane update, GPU render, readback of the 1024² field,
 * colour mapping, putImageData, colour bar, axes and overlay. Three measurements, JSON lines:
 *   - page.frames: back-to-back frames driven by the page's test hook (pan a little, render, wait);
 *   - page.drag: real mouse drags with playwright for a few seconds, frames completed / seconds;
 *   - node.surface / cpu.surface: the same surface with dawn.node (lavapipe) and the float64 CPU path,
 *     same run, for comparison.
 * Usage: node scripts/run-ts.mjs bench/browser.ts [--res 1024] [--frames 30] [--dragSeconds 5]
 */
import os from 'node:os';
import { simulateScenario } from '../src/core/datasets.js';
import { coordinatePlane } from '../src/surface/plane.js';
import { surface, surfaceCpu } from '../src/surface/surface.js';
import { decodeF32, pageReady, startDemoSession } from '../test/browser-harness.js';
import { benchArgs, benchDevice, emit, machine, median } from './common.js';

const args = benchArgs();
const res = Number(args.res ?? 1024);
const nFrames = Number(args.frames ?? 30);
const dragSeconds = Number(args.dragSeconds ?? 5);
const setup = { dataset: 'gaussian', B: 2, D: 1, K: 1, seed: 1, plane: 'coords', n1: 0, d1: 0, n2: 1, d2: 0, span: 2, res, scale: 'log' };

type Hooks = {
  set(v: Record<string, string | number>): Promise<{ ok: boolean; inline: Record<string, string> }>;
  frames(n: number): Promise<{ frameMs: number[]; gpuMs: number[]; drawMs: number[] }>;
  state(): { adapter: string; frames: number };
  idle(): Promise<void>;
  field(): { res: number; base64: string } | null;
};

const round = (x: number, d = 1) => Number(x.toFixed(d));
const session = await startDemoSession();
try {
  const page = await session.newPage({ viewport: { width: 1600, height: 960 } });
  await pageReady(page);
  const ok = await page.evaluate((v) => (window as unknown as { __dlgTest: Hooks }).__dlgTest.set(v), setup);
  if (!ok.ok) throw new Error(`the page rejected the bench setup: ${JSON.stringify(ok.inline)}`);
  const adapter = await page.evaluate(() => (window as unknown as { __dlgTest: Hooks }).__dlgTest.state().adapter);
  const f = await page.evaluate(() => (window as unknown as { __dlgTest: Hooks }).__dlgTest.field());
  if (!f || f.res !== res || decodeF32(f.base64).length !== res * res) throw new Error('the page did not render the requested resolution');

  // Warm-up (pipelines compiled on first use), then back-to-back frames.
  await page.evaluate(() => (window as unknown as { __dlgTest: Hooks }).__dlgTest.frames(3));
  const load0 = os.loadavg()[0];
  const r = await page.evaluate((n) => (window as unknown as { __dlgTest: Hooks }).__dlgTest.frames(n), nFrames);
  const total = r.frameMs.reduce((a, b) => a + b, 0);
  emit('browser.frames', {
    what: 'explorer page re-render while the slice centre moves (hook-driven, back to back)',
    B: 2,
    D: 1,
    K: 1,
    res,
    frames: nFrames,
    fps: round((1000 * nFrames) / total, 2),
    fpsFromMedian: round(1000 / median(r.frameMs), 2),
    medianFrameMs: round(median(r.frameMs)),
    medianGpuReadbackMs: round(median(r.gpuMs)),
    medianDrawMs: round(median(r.drawMs)),
    targetFps: 10,
    adapter,
    browser: session.browser.version(),
    loadavg1: round(load0, 2),
    ...machine(),
  });

  // Real mouse drags over the surface for dragSeconds: frames completed per second.
  const box = (await page.locator('#figure').boundingBox())!;
  const frames0 = await page.evaluate(() => (window as unknown as { __dlgTest: Hooks }).__dlgTest.state().frames);
  const t0 = Date.now();
  let moves = 0;
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  while (Date.now() - t0 < dragSeconds * 1000) {
    const ph = (moves++ % 40) / 40;
    await page.mouse.move(box.x + box.width * (0.3 + 0.4 * ph), box.y + box.height * (0.5 + 0.1 * Math.sin(ph * 6.283)));
    await new Promise((res2) => setTimeout(res2, 16)); // ~60 Hz pointer events
  }
  await page.mouse.up();
  const dragMs = Date.now() - t0;
  await page.evaluate(() => (window as unknown as { __dlgTest: Hooks }).__dlgTest.idle());
  const frames1 = await page.evaluate(() => (window as unknown as { __dlgTest: Hooks }).__dlgTest.state().frames);
  emit('browser.drag', {
    what: 'explorer page frames completed during real mouse drags (coalesced: the latest position wins)',
    B: 2,
    D: 1,
    K: 1,
    res,
    seconds: round(dragMs / 1000, 2),
    pointerMoves: moves,
    framesRendered: frames1 - frames0,
    fps: round(((frames1 - frames0) * 1000) / dragMs, 2),
    targetFps: 10,
    loadavg1: round(os.loadavg()[0], 2),
  });
} finally {
  await session.close();
}

// Same run: the same field with dawn.node (lavapipe) and with the float64 CPU path.
const sc = simulateScenario({ dataset: 'gaussian', B: 2, D: 1, K: 1, seed: 1 });
const plane = coordinatePlane(sc, { a: [0, 0], b: [1, 0] });
const dlg = await benchDevice();
try {
  await surface(dlg.device, sc, plane, res);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    await surface(dlg.device, sc, plane, res);
    times.push(performance.now() - t);
  }
  emit('node.surface', { what: 'surface() render + readback with dawn.node, same field', res, medianMs: round(median(times)), fps: round(1000 / median(times), 2), adapter: dlg.adapterName });
} finally {
  dlg.destroy();
}
const cpuRes = Math.min(res, 256);
const tc = performance.now();
surfaceCpu(sc, plane, cpuRes);
const cpuMs = performance.now() - tc;
const cpuPps = (cpuRes * cpuRes * 1000) / cpuMs;
emit('cpu.surface', { what: 'float64 CPU reference (surfaceCpu), extrapolated to res² points', res: cpuRes, ms: round(cpuMs), pointsPerSecond: Math.round(cpuPps), fpsAtRes: round(cpuPps / (res * res), 3), resForFps: res });
