/**
 * Issue 14: outputs never destroy anything. Each defect's reproduction, run through the real
 * `dlg` binary (dist/node/cli.js): exit 2 with a message that names the field, what was expected
 * and what was found; nothing replaced, nothing left behind. Small problems, --backend cpu.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDataset } from '../src/node/data-node.js';
import { diagnose, diagnoseCost } from '../src/analysis/diagnose.js';
import { simulateScenario } from '../src/core/datasets.js';
import { inferLabels, isOneHot } from '../src/analysis/labels.js';

const dir = mkdtempSync(join(tmpdir(), 'dlg-outputs-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function dlg(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['dist/node/cli.js', ...args], { env: { ...process.env, XDG_RUNTIME_DIR: '/tmp', ...env }, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const e = err as { code?: unknown; signal?: NodeJS.Signals } | null;
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: e?.signal ?? null, stdout, stderr });
    });
  });
}

/** Exit 2, one clean line naming the field, no stack trace. */
async function refused(args: string[], ...mentions: (string | RegExp)[]): Promise<Run> {
  const r = await dlg(args);
  expect(r.code, `dlg ${args.join(' ')}\n${r.stderr}`).toBe(2);
  expect(r.stderr).not.toContain('unexpected failure');
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  for (const m of mentions) expect(r.stderr).toMatch(m);
  return r;
}

/** No temp file (.name.pid.time.tmp) anywhere under `d`. */
function temps(d: string): string[] {
  return readdirSync(d, { recursive: true, encoding: 'utf8' }).filter((f) => /\.tmp$/.test(f) || /\.probe$/.test(f));
}

const scen = join(dir, 's.json');
const digits = join(dir, 'digits.json');
const big = join(dir, 'big.json');

beforeAll(async () => {
  for (const args of [
    ['simulate', '--dataset', 'gaussian', '--batch', '2', '--features', '2', '--seed', '1', '--out', scen],
    ['simulate', '--dataset', 'digits', '--batch', '1', '--seed', '1', '--out', digits],
    ['simulate', '--dataset', 'gaussian', '--batch', '1', '--features', '100000', '--seed', '1', '--out', big],
  ]) {
    const r = await dlg(args);
    expect(r.code, r.stderr).toBe(0);
  }
});

describe('1. --out never replaces a special file', () => {
  it('a character device, a FIFO, a symlink to /proc/self/fd/1 and a folder are refused up front, and stay what they were', async () => {
    const d = mkdtempSync(join(dir, 'special-'));
    const nul = join(d, 'mynull');
    const fifo = join(d, 'fifo');
    const link = join(d, 'link');
    const folder = join(d, 'folder');
    let haveDevice = true;
    try {
      execFileSyncQuiet('mknod', [nul, 'c', '1', '3']);
    } catch {
      haveDevice = false; // not root: the FIFO and link cases still run
    }
    execFileSyncQuiet('mkfifo', [fifo]);
    symlinkSync('/proc/self/fd/1', link);
    mkdirSync(folder);
    const cases: [string, RegExp][] = [
      ...(haveDevice ? ([[nul, /a character device/]] as [string, RegExp][]) : []),
      [fifo, /a FIFO/],
      [link, /a symbolic link to \/proc\/self\/fd\/1/],
      [folder, /a directory/],
    ];
    for (const [path, kind] of cases) {
      await refused(['attack', scen, '--restarts', '8', '--iterations', '10', '--backend', 'cpu', '--out', path], /--out: expected a regular file or a new path/, kind);
      await refused(['simulate', '--dataset', 'iris', '--batch', '2', '--seed', '1', '--out', path], /--out/, kind);
      await refused(['surface', scen, '--res', '8', '--backend', 'cpu', '--out', join(d, 'ok.png'), '--npy', path], /--npy/, kind);
    }
    if (haveDevice) expect(lstatSync(nul).isCharacterDevice()).toBe(true);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readdirSync(d).sort()).toEqual([...(haveDevice ? ['mynull'] : []), 'fifo', 'folder', 'link'].sort());
  });
});

describe('2. sizes are checked up front', () => {
  it('simulate --features 1000000000 says what it would need, at once', async () => {
    const out = join(dir, 'huge.json');
    const t0 = Date.now();
    await refused(['simulate', '--dataset', 'gaussian', '--batch', '1', '--features', '1000000000', '--seed', '1', '--out', out], /--features/, /needs? about [\d.]+ GiB/);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(existsSync(out)).toBe(false);
  });

  it('diagnose and surface --plane flattest on a D = 100000 scenario: exit 2 with the memory, no RangeError', async () => {
    const d = await refused(['diagnose', big], /scenario: expected a size whose work fits in memory/, /100000×100000 Gram matrix/, /needs about [\d.]+ GiB/);
    expect(d.stderr).not.toContain('RangeError');
    const s = await refused(['surface', big, '--plane', 'flattest', '--res', '8', '--backend', 'cpu', '--out', join(dir, 'flat.png')], /--plane flattest/, /needs about [\d.]+ GiB/);
    expect(s.stderr).not.toContain('RangeError');
    expect(existsSync(join(dir, 'flat.png'))).toBe(false);
  });

  it('diagnose reports progress (the CLI shows it for long work) and estimates its cost', () => {
    const s = simulateScenario({ dataset: 'gaussian', B: 4, D: 8, K: 2, seed: 3 });
    const seen: number[] = [];
    diagnose(s, { onProgress: (f) => seen.push(f) });
    expect(seen.length).toBeGreaterThan(0);
    expect(seen[seen.length - 1]).toBe(1);
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThanOrEqual(seen[i - 1]);
    const c = diagnoseCost(1, 10000, 1);
    expect(c.n).toBe(10000);
    expect(c.bytes).toBeGreaterThan(1.5e9);
    expect(c.seconds).toBeGreaterThan(60);
  });
});

describe('3. clean checks instead of stack traces', () => {
  it('demo --out on an existing file, and in a folder that cannot be created: exit 2 before any work', async () => {
    const f = join(dir, 'somefile.json');
    writeFileSync(f, 'keep me');
    await refused(['demo', '--out', f], /--out: expected a folder/, /a regular file/);
    expect(readFileSync(f, 'utf8')).toBe('keep me');
    await refused(['demo', '--out', '/proc/dlg-demo-out'], /--out: expected a folder/, /cannot create it in \/proc/);
  });

  it('attack --out /proc/o.json and --out /dev/stdout fail the up-front check (a temp file there, then rename), before the attack runs', async () => {
    const t0 = Date.now();
    await refused(['attack', scen, '--restarts', '8', '--iterations', '100000', '--backend', 'cpu', '--out', '/proc/o.json'], /--out: expected a path in a writable folder/, /\/proc\/o\.json/);
    await refused(['attack', scen, '--restarts', '8', '--iterations', '100000', '--backend', 'cpu', '--out', '/dev/stdout'], /a symbolic link/);
    expect(Date.now() - t0).toBeLessThan(10_000); // 100000 iterations were never started
  });
});

describe('4. an output is never an input or another output', () => {
  it('attack --out s.json, surface --out s.json, --png = --out, --npy = --out, and other spellings of the same file', async () => {
    const before = readFileSync(scen, 'utf8');
    await refused(['attack', scen, '--restarts', '8', '--iterations', '10', '--backend', 'cpu', '--out', scen], /--out: expected a path different from scenario/);
    const sub = join(dir, 'sub');
    mkdirSync(sub, { recursive: true });
    await refused(['surface', scen, '--res', '8', '--backend', 'cpu', '--out', join(sub, '..', 's.json')], /--out: expected a path different from scenario/);
    const dOut = join(dir, 'd.json');
    await refused(['attack', digits, '--restarts', '8', '--iterations', '10', '--backend', 'cpu', '--out', dOut, '--png', dOut], /--png: expected a path different from --out/);
    await refused(['surface', scen, '--res', '8', '--backend', 'cpu', '--out', join(dir, 'x.png'), '--npy', join(dir, 'x.png')], /--npy: expected a path different from --out/);
    await refused(['surface', scen, '--res', '8', '--backend', 'cpu', '--plane', 'file', '--plane-file', join(dir, 'p.json'), '--out', join(dir, 'p.json')], /--out: expected a path different from --plane-file/);
    expect(readFileSync(scen, 'utf8')).toBe(before);
    expect(existsSync(dOut)).toBe(false);
    expect(existsSync(join(dir, 'x.png'))).toBe(false);
  });
});

describe('5. signals remove temp files', () => {
  it('SIGINT while surface writes --npy: exit 130, no temp file, no output', async () => {
    const d = mkdtempSync(join(dir, 'sigint-'));
    const child = spawn(process.execPath, ['dist/node/cli.js', 'surface', scen, '--res', '2048', '--backend', 'cpu', '--npy', join(d, 'f.npy'), '--out', join(d, 'f.png')], {
      env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' },
      stdio: 'ignore',
    });
    const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on('exit', (code, signal) => res({ code, signal })));
    // Wait until the .npy temp exists (the write is under way), then interrupt. The up-front writability
    // probe makes a temp of the same name for a moment (and the handlers are detached again after it), so
    // a temp counts once it is still there 50 ms later.
    const t0 = Date.now();
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const writing = async (): Promise<boolean> => temps(d).length > 0 && (await sleep(50), temps(d).length > 0);
    while (child.exitCode === null && Date.now() - t0 < 20_000 && !(await writing())) await sleep(5);
    expect(temps(d).length, `the surface command ${child.exitCode === null ? 'made no temp file in 20 s' : 'finished before its temp file was seen'}`).toBeGreaterThan(0);
    child.kill('SIGINT');
    const r = await done;
    expect(r.code).toBe(130);
    expect(temps(d)).toEqual([]);
    expect(readdirSync(d)).toEqual([]);
  });

  it('a temp file left by a dead process (SIGKILL) is removed by the next write of the same path', async () => {
    const d = mkdtempSync(join(dir, 'stale-'));
    const stale = join(d, `.r.json.999999999.1.tmp`); // no such pid
    writeFileSync(stale, '{"partial": ');
    const r = await dlg(['attack', scen, '--restarts', '8', '--iterations', '10', '--backend', 'cpu', '--out', join(d, 'r.json')]);
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(d)).toEqual(['r.json']);
  });
});

describe('6. study never wipes earlier results', () => {
  it('an existing results folder is refused without --resume or --overwrite; --overwrite replaces it', async () => {
    const out = join(dir, 'study');
    const args = ['study', '--backend', 'cpu', '--batch', '1', '--features', '1', '--outputs', '1', '--optimizer', 'adam', '--scenarios', '2', '--restarts', '4', '--iterations', '50', '--read-every', '10', '--no-plots', '--out', out];
    expect((await dlg(args)).code).toBe(0);
    const jsonl = join(out, 'results.jsonl');
    const fake = readFileSync(jsonl, 'utf8') + readFileSync(jsonl, 'utf8').replace('gaussian/B1', 'gaussian/B9');
    writeFileSync(jsonl, fake);
    await refused(args, /out: expected a folder without earlier results/, /results\.jsonl holds 2 configuration/);
    expect(readFileSync(jsonl, 'utf8')).toBe(fake);
    await refused([...args, '--resume', '--overwrite'], /either --resume or --overwrite/);
    expect((await dlg([...args, '--resume'])).code).toBe(0);
    expect(readFileSync(jsonl, 'utf8').trim().split('\n')).toHaveLength(2);
    expect((await dlg([...args, '--overwrite'])).code).toBe(0);
    expect(readFileSync(jsonl, 'utf8').trim().split('\n')).toHaveLength(1);
  });
});

describe('7. smaller points', () => {
  it('--res 2.5 names the real range', async () => {
    await refused(['surface', scen, '--res', '2.5'], /expected an integer in \[2, 16384\] \(grid points per axis\), found "2\.5"/);
  });

  it('--path direct --kernel b2 is refused', async () => {
    await refused(['surface', scen, '--path', 'direct', '--kernel', 'b2', '--res', '8'], /--kernel: expected nothing with --path direct/);
  });

  it('--stop-after above the restart count is refused', async () => {
    await refused(['attack', scen, '--restarts', '8', '--stop-after', '9', '--backend', 'cpu'], /stopAfter: expected an integer in \[0, 8\]/, /found 9/);
  });

  it('--method analytic records only the options that apply', async () => {
    const one = join(dir, 'one.json');
    expect((await dlg(['simulate', '--dataset', 'gaussian', '--batch', '1', '--features', '3', '--seed', '2', '--out', one])).code).toBe(0);
    const r = await dlg(['attack', one, '--method', 'analytic', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const opts = JSON.parse(r.stdout).options;
    expect(opts.method).toBe('analytic');
    for (const k of ['restarts', 'optimizer', 'iterations', 'lr', 'init', 'seed', 'polish']) expect(opts).not.toHaveProperty(k);
  });

  it('study --dataset iris --features 7 is refused, as simulate refuses it', async () => {
    await refused(['study', '--dataset', 'iris', '--features', '7', '--backend', 'cpu', '--out', join(dir, 'never')], /--features: expected 4 or nothing/, /found 7/);
    expect(existsSync(join(dir, 'never'))).toBe(false);
  });

  it('unknown scenario keys: a warning on stderr, and an error under --strict', async () => {
    const typo = join(dir, 'typo.json');
    const json = JSON.parse(readFileSync(scen, 'utf8'));
    json.input = json.inputs;
    writeFileSync(typo, JSON.stringify(json));
    const warned = await dlg(['diagnose', typo]);
    expect(warned.code).toBe(0);
    expect(warned.stderr).toMatch(/warning: scenario .*typo\.json: unknown key\(s\) "input" ignored/);
    await refused(['--strict', 'diagnose', typo], /unknown key\(s\) "input"/);
  });

  it('"did you mean", --version, and simulate --help marks the required flags', async () => {
    const r = await dlg(['atack']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Did you mean attack?');
    const o = await dlg(['attack', scen, '--restart', '8']);
    expect(o.code).toBe(2);
    expect(o.stderr).toContain('Did you mean --restarts?');
    const v = await dlg(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toBe(JSON.parse(readFileSync('package.json', 'utf8')).version);
    const h = (await dlg(['simulate', '--help'])).stdout;
    for (const flag of ['--dataset', '--batch', '--seed', '--out']) expect(h).toMatch(new RegExp(`${flag} [^\\n]*(\\n {20,}[^\\n]*)*\\(required\\)`));
  });

  it('a plane through the truth and a reconstruction 1e-8 away warns, with the distance', async () => {
    const s = JSON.parse(readFileSync(scen, 'utf8'));
    const recon = join(dir, 'recon.json');
    writeFileSync(recon, JSON.stringify({ reconstruction: s.inputs.map((row: number[]) => row.map((v: number) => v + 1e-8)) }));
    const r = await dlg(['surface', scen, '--plane', 'points', '--points', `truth,@${recon}:reconstruction,zero`, '--res', '8', '--backend', 'cpu', '--out', join(dir, 'deg.png')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: the plane is degenerate: its u \(α\) direction is 2\.00e-8 long/);
  });

  it('--labels infer on iris B = 4 uses the one-hot rows: far fewer candidates than 16', () => {
    const s = simulateScenario({ dataset: 'iris', B: 4, seed: 1, data: loadDataset('iris') });
    expect(isOneHot(s.y, 4, 3)).toBe(true);
    const free = inferLabels(s.gradient.b, 4, 3, s.reduction, 16);
    const hot = inferLabels(s.gradient.b, 4, 3, s.reduction, 16, { oneHot: true });
    expect(free.tooMany).toBe(true);
    expect(hot.tooMany).toBe(false);
    expect(hot.count!).toBeLessThanOrEqual(4);
    expect(hot.labelings.some((y) => sameRows(y, s.y, 4, 3))).toBe(true);
  });

  it('DLG_ADAPTER=bogus lists the adapters that exist', async () => {
    const r = await dlg(['eval', scen, '--fake', join(dir, 'nofile.json')], { DLG_ADAPTER: 'bogus' });
    expect(r.code).toBe(2); // the missing --fake file is bad input, found first
    const fake = join(dir, 'fake.json');
    writeFileSync(fake, JSON.stringify([[0, 0], [0, 0]]));
    const a = await dlg(['eval', scen, '--fake', fake], { DLG_ADAPTER: 'bogus' });
    expect(a.code).toBe(1);
    expect(a.stderr).toContain('adapter "bogus"');
    expect(a.stderr).toMatch(/Available adapters:\s*\n\s*\* backend: '\w+', name: '/);
  });
});

function sameRows(a: ArrayLike<number>, b: ArrayLike<number>, B: number, K: number): boolean {
  const key = (y: ArrayLike<number>) => Array.from({ length: B }, (_, n) => Array.from({ length: K }, (_, k) => y[n * K + k]).join('')).sort().join('|');
  return key(a) === key(b);
}

function execFileSyncQuiet(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: 'ignore' });
}
