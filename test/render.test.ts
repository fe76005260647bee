import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';
import { NpyWriter, npyHeader, parseNpyHeader, readNpy } from '../src/node/npy.js';
import { colormapLut, valueRange } from '../src/node/render.js';
import { fieldRange, lut, scaleDomain } from '../src/web/colormap.js';
import { Rng } from '../src/core/rng.js';
import { parseScenario, scenarioToJson } from '../src/core/scenario.js';
import { surface } from '../src/surface/surface.js';
import { randomPlane } from '../src/surface/plane.js';
import { useGpu } from './helpers.js';

const gpu = useGpu();
const dir = mkdtempSync(join(tmpdir(), 'dlg-surface-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// The seed scenario: B = 2, D = 1, K = 1.
const seed = { format: 'dlg-scenario/1', reduction: 'mean', weights: [[0.8]], bias: [0.1], labels: [[1], [0]], inputs: [[0.7], [-0.4]] };
const seedPath = join(dir, 'seed.json');
writeFileSync(seedPath, JSON.stringify(seed));
// Same layer, shared gradient only (no truth, so no markers).
const noTruth = scenarioToJson(parseScenario(seed));
delete noTruth.inputs;
const noTruthPath = join(dir, 'no-truth.json');
writeFileSync(noTruthPath, JSON.stringify(noTruth));

function dlg(...args: string[]) {
  const r = spawnSync(process.execPath, ['dist/node/cli.js', 'surface', ...args], { encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function readPng(path: string): PNG {
  return PNG.sync.read(readFileSync(path));
}

describe('npy', () => {
  it('writes a correct float32 (res, res) C-order header, 64-byte aligned, and round-trips streamed rows', () => {
    const h = npyHeader([1000, 1000]);
    expect(h.length % 64).toBe(0);
    expect(Array.from(h.subarray(0, 8))).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
    const len = h[8] | (h[9] << 8);
    expect(10 + len).toBe(h.length);
    const text = Buffer.from(h.subarray(10)).toString('latin1');
    expect(text).toBe(`{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 1000), }`.padEnd(len - 1, ' ') + '\n');
    const path = join(dir, 'rows.npy');
    const w = new NpyWriter(path, [3, 4]);
    w.write(Float32Array.of(0, 1, 2, 3));
    w.write(Float32Array.of(4, 5, 6, 7, 8, 9, 10, 11));
    w.close();
    const back = readNpy(path);
    expect(back.shape).toEqual([3, 4]);
    expect(Array.from(back.data)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    const hdr = parseNpyHeader(readFileSync(path));
    expect(hdr).toEqual({ descr: '<f4', fortranOrder: false, shape: [3, 4], dataOffset: 128 });
    expect(readFileSync(path).length).toBe(128 + 12 * 4);
    // A short write leaves nothing behind.
    const bad = new NpyWriter(join(dir, 'short.npy'), [2, 2]);
    bad.write(Float32Array.of(1));
    expect(() => bad.close()).toThrow(/4 values/);
    expect(readdirSync(dir).filter((f) => f.includes('short'))).toEqual([]);
  });
});

describe('colour range', () => {
  it('log range from float32 bits equals the generic path (zeros, negatives, NaN, ±Inf, denormals skipped or kept alike)', () => {
    const rng = new Rng(3);
    const vals = Array.from({ length: 5000 }, () => 10 ** (rng.uniform() * 20 - 12));
    vals.push(0, -0, -3, NaN, Infinity, -Infinity, 1e-42, 3.4e38);
    const f32 = Float32Array.from(vals);
    const generic = Array.from(f32);
    expect(valueRange(f32, 'log')).toEqual(valueRange(generic, 'log'));
    expect(valueRange(Float32Array.of(0, NaN, -1, Infinity), 'log')).toEqual(valueRange([0, NaN, -1, Infinity], 'log'));
    expect(valueRange(Float32Array.of(2, 2), 'log')).toEqual(valueRange([2, 2], 'log'));
  });

  it('the PNG and the explorer page use one scale and one colour map', () => {
    const rng = new Rng(5);
    const f = Float32Array.from({ length: 4000 }, () => 10 ** (rng.uniform() * 40 - 30));
    for (const kind of ['log', 'linear'] as const) {
      const d = scaleDomain(kind, fieldRange(f));
      expect(valueRange(f, kind)).toEqual([d.lo, d.hi]);
    }
    expect(valueRange(f, 'log')[0]).toBeCloseTo(valueRange(f, 'log')[1] - 14, 9); // the 14-decade floor
    const png = colormapLut('viridis');
    const web = lut('viridis');
    for (let i = 0; i < 256; i++) expect([web[i] & 255, (web[i] >>> 8) & 255, (web[i] >>> 16) & 255]).toEqual([png[3 * i], png[3 * i + 1], png[3 * i + 2]]);
  });
});

describe('dlg surface', () => {
  it('--plain writes exactly res×res pixels (β upwards) and --npy the same field the library computes', async () => {
    const res = 129;
    const out = join(dir, 'plain.png');
    const npy = join(dir, 'plain.npy');
    const r = dlg(seedPath, '--plane', 'random', '--seed', '3', '--res', String(res), '--plain', '--out', out, '--npy', npy);
    expect(r.code, r.stderr).toBe(0);
    const png = readPng(out);
    expect([png.width, png.height]).toEqual([res, res]);
    const f = readNpy(npy);
    expect(f.shape).toEqual([res, res]);
    const lib = await surface(gpu(), parseScenario(seed), randomPlane(parseScenario(seed), { seed: 3 }), res);
    expect(Buffer.from(f.data.buffer).equals(Buffer.from(lib.buffer))).toBe(true);
    // Pixel (x, y) shows field[(res − 1 − y)·res + x] through the viridis LUT on the log10 scale.
    const lut = colormapLut('viridis');
    const [lo, hi] = valueRange(lib, 'log');
    for (const [x, y] of [
      [0, 0],
      [res - 1, 0],
      [5, res - 1],
      [64, 64],
      [100, 17],
    ]) {
      const v = Math.log10(lib[(res - 1 - y) * res + x]);
      const q = Math.min(255, Math.max(0, ((v - lo) / (hi - lo)) * 255));
      const p = (y * res + x) * 4;
      const got = [png.data[p], png.data[p + 1], png.data[p + 2]];
      // The renderer's log10 is tabulated (error ~1e-8): a value on a bin edge may land next door.
      const near = [Math.floor(q), Math.max(0, Math.floor(q - 1e-5)), Math.min(255, Math.floor(q + 1e-5))].map((c) => [lut[3 * c], lut[3 * c + 1], lut[3 * c + 2]]);
      expect(near, `pixel ${x},${y}`).toContainEqual(got);
    }
  });

  it('annotated PNG: the field area is res×res at 1:1 inside axes and a colour bar; census in --json', () => {
    const res = 101;
    const out = join(dir, 'annotated.png');
    const plainOut = join(dir, 'annotated-plain.png');
    const common = ['--plane', 'random', '--center', 'zero', '--seed', '1', '--res', String(res), '--no-contours'];
    const r = dlg(noTruthPath, ...common, '--out', out, '--json');
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    const png = readPng(out);
    expect([png.width, png.height]).toEqual([j.image.width, j.image.height]);
    expect(png.width).toBeGreaterThan(res + j.image.fieldX);
    expect(png.height).toBeGreaterThan(res + j.image.fieldY);
    expect(dlg(noTruthPath, ...common, '--plain', '--out', plainOut).code).toBe(0);
    const plain = readPng(plainOut);
    // Inside the frame (no markers without a truth, no contours), pixels are the plain field's.
    let diff = 0;
    for (let y = 2; y < res - 2; y++) {
      for (let x = 2; x < res - 2; x++) {
        const a = ((y + j.image.fieldY) * png.width + x + j.image.fieldX) * 4;
        const b = (y * res + x) * 4;
        if (png.data[a] !== plain.data[b] || png.data[a + 1] !== plain.data[b + 1] || png.data[a + 2] !== plain.data[b + 2]) diff++;
      }
    }
    expect(diff).toBe(0);
    expect(j.census.count).toBeGreaterThanOrEqual(1);
    expect(j.plane.markers).toEqual([]);
  });

  it('truth on a grid point: census finds it as a near-exact minimum; trajectory and markers are drawn', () => {
    const res = 121; // odd: α = β = 0 (the truth) is a grid point
    const out = join(dir, 'traj.png');
    const attack = join(dir, 'attack.json');
    const pts = Array.from({ length: 20 }, (_, k) => [[0.7 + 1.5 * (1 - k / 19)], [-0.4 - 0.8 * (1 - k / 19)]]);
    writeFileSync(attack, JSON.stringify({ trajectory: { every: 1, points: pts } }));
    const r = dlg(seedPath, '--plane', 'random', '--span', '2', '--res', String(res), '--out', out, '--json', '--trajectory', attack);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.census.min.relative).toBeLessThanOrEqual(1e-12);
    expect(j.census.min.alpha).toBe(0);
    expect(j.census.min.beta).toBe(0);
    expect(j.census.nearZero).toBeGreaterThanOrEqual(1);
    expect(j.plane.markers[0].name).toBe('truth');
    const png = readPng(out);
    let red = 0;
    for (let p = 0; p < png.width * png.height; p++) {
      if (png.data[4 * p] > 230 && png.data[4 * p + 1] < 90 && png.data[4 * p + 2] < 90) red++;
    }
    expect(red).toBeGreaterThan(50); // the trajectory polyline
  });

  it('points, coords and flattest planes render; text output prints the census', () => {
    for (const args of [
      ['--plane', 'points', '--points', 'truth,swap01,zero'],
      ['--plane', 'coords', '--coords', '0,0:1,0', '--alpha', '-2,2', '--beta', '-2,2'],
      ['--plane', 'flattest', '--span', '0.5'],
    ]) {
      const out = join(dir, `p-${args[1]}.png`);
      const r = dlg(seedPath, ...args, '--res', '65', '--out', out);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(/basin census \(65²\): \d+ local minima/);
      const png = readPng(out);
      expect(png.width).toBeGreaterThan(65);
    }
  });

  it('bad input: clear error, exit 2, nothing left behind', () => {
    const bad = mkdtempSync(join(tmpdir(), 'dlg-surface-bad-'));
    try {
      const ragged = join(bad, 'ragged.json');
      writeFileSync(ragged, JSON.stringify({ center: [[1], [2, 3]], u: [[1], [0]], v: [[0], [1]], alpha: [0, 1], beta: [0, 1] }));
      const parallel = join(bad, 'parallel.json');
      writeFileSync(parallel, JSON.stringify({ center: [[1], [2]], u: [[1], [0]], v: [[-2], [0]], alpha: [0, 1], beta: [0, 1] }));
      const zero = join(bad, 'zero.json');
      writeFileSync(zero, JSON.stringify({ center: [[1], [2]], u: [[0], [0]], v: [[0], [1]], alpha: [0, 1], beta: [0, 1] }));
      const inputs = new Set(readdirSync(bad));
      const out = join(bad, 'o.png');
      const npy = join(bad, 'o.npy');
      const cases: [string[], RegExp][] = [
        [['--res', '0'], /--res: expected an integer in \[2, 16384\]/],
        [['--res', '-7'], /--res/],
        [['--res', '20000'], /at most 16384.*1\.49 GiB/],
        [['--coords', '0,0:5,0'], /coords\.b\[0\]: expected a sample index in \[0, 1\], found 5/],
        [['--coords', '0,0:0,0'], /degenerate/],
        [['--coords', '0,0:1,3'], /coords\.b\[1\]/],
        [['--plane', 'file', '--plane-file', join(bad, 'missing.json')], /no such file/],
        [['--plane', 'file', '--plane-file', ragged], /ragged/],
        [['--plane', 'file', '--plane-file', parallel], /parallel/],
        [['--plane', 'file', '--plane-file', zero], /plane\.u: expected a non-zero direction/],
        [['--plane', 'points', '--points', 'truth,truth,zero'], /points\[1\]/],
        [['--alpha', '1,1'], /--alpha/],
        [['--out', join(bad, 'nope', 'x.png')], /--out: expected a path in an existing, writable folder/],
        [['--npy', join(bad, 'nope', 'x.npy')], /--npy/],
      ];
      for (const [args, msg] of cases) {
        const r = dlg(seedPath, '--res', '33', '--out', out, '--npy', npy, ...args);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
        expect(r.stderr, args.join(' ')).toMatch(msg);
        expect(readdirSync(bad).filter((f) => !inputs.has(f)), args.join(' ')).toEqual([]);
      }
    } finally {
      rmSync(bad, { recursive: true, force: true });
    }
  });

  it('--backend cpu gives the f64 reference field', () => {
    const npyGpu = join(dir, 'g.npy');
    const npyCpu = join(dir, 'c.npy');
    const args = [seedPath, '--plane', 'random', '--res', '17', '--plain'];
    expect(dlg(...args, '--out', join(dir, 'g.png'), '--npy', npyGpu).code).toBe(0);
    expect(dlg(...args, '--out', join(dir, 'c.png'), '--npy', npyCpu, '--backend', 'cpu').code).toBe(0);
    const g = readNpy(npyGpu).data;
    const c = readNpy(npyCpu).data;
    const scale = parseScenario(seed).gradient.b[0] ** 2 + parseScenario(seed).gradient.W[0] ** 2;
    for (let p = 0; p < g.length; p++) expect(Math.abs(g[p] - c[p])).toBeLessThanOrEqual(1e-6 * scale + 1e-4 * c[p]);
  });
});
