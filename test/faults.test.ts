/**
 * Fault injection (issue 14): `dlg attack`, `dlg surface` and `dlg study` are killed at random
 * moments with SIGINT, SIGTERM and SIGKILL. Whatever is at an output path afterwards is a complete
 * output (never a partial one); SIGINT/SIGTERM leave no temp file; a temp left by SIGKILL (which no
 * process can clean up after itself) is a dot-file `.name.pid.time.tmp`, never mistaken for output,
 * and removed by the next write of the same path. `study --resume` after the kills ends with the
 * same results rows as an uninterrupted run (timing fields aside). Tiny problems, --backend cpu.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readNpy } from '../src/node/npy.js';
import { Rng } from '../src/core/rng.js';
import { type ConfigResult, readStudyResults } from '../src/node/study.js';

const dir = mkdtempSync(join(tmpdir(), 'dlg-faults-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const env = { ...process.env, XDG_RUNTIME_DIR: '/tmp' };

function dlg(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['dist/node/cli.js', ...args], { env, maxBuffer: 64 << 20 }, (err, _stdout, stderr) => {
      const code = err ? (err as { code?: unknown }).code : 0;
      resolve({ code: typeof code === 'number' ? code : null, stderr });
    });
  });
}

/** Starts `dlg args`, sends `signal` after `delayMs`, and reports how it ended. */
function killAfter(args: string[], signal: NodeJS.Signals, delayMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; sent: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['dist/node/cli.js', ...args], { env, stdio: 'ignore' });
    let sent = false;
    const timer = setTimeout(() => {
      sent = child.kill(signal);
    }, delayMs);
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      resolve({ code, signal: sig, sent });
    });
  });
}

const temps = (d: string) => readdirSync(d, { recursive: true, encoding: 'utf8' }).filter((f) => /\.tmp$|\.probe$/.test(f));

/** Drops timing fields (…Ms) recursively: everything else must match exactly. */
function withoutTiming(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutTiming);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).filter(([k]) => !/Ms$/.test(k)).map(([k, x]) => [k, withoutTiming(x)]));
  return v;
}

const byKey = (rows: ConfigResult[]) => Object.fromEntries(rows.map((r) => [r.key, withoutTiming(r)]));

const scen = join(dir, 's.json');
const STUDY = ['study', '--backend', 'cpu', '--batch', '1,2', '--features', '1', '--outputs', '1', '--optimizer', 'adam,gd', '--scenarios', '3', '--restarts', '8', '--iterations', '2000', '--read-every', '100'];

beforeAll(async () => {
  const r = await dlg(['simulate', '--dataset', 'gaussian', '--batch', '2', '--features', '1', '--seed', '3', '--out', scen]);
  expect(r.code, r.stderr).toBe(0);
});

describe('fault injection: random kills never leave partial or temp outputs', () => {
  it('24 kills of attack, surface and study (SIGINT, SIGTERM, SIGKILL); study --resume then matches an uninterrupted run', async () => {
    const ref = join(dir, 'ref');
    const refRun = await dlg([...STUDY, '--no-plots', '--out', ref]);
    expect(refRun.code, refRun.stderr).toBe(0);
    const expected = byKey(readStudyResults(join(ref, 'results.jsonl')));
    expect(Object.keys(expected)).toHaveLength(4);

    const work = join(dir, 'work');
    mkdirSync(work);
    const out = { attack: join(work, 'r.json'), png: join(work, 'f.png'), npy: join(work, 'f.npy'), study: join(work, 'study') };
    const commands = {
      attack: ['attack', scen, '--backend', 'cpu', '--restarts', '64', '--iterations', '3000', '--out', out.attack],
      surface: ['surface', scen, '--backend', 'cpu', '--res', '1280', '--npy', out.npy, '--out', out.png],
      study: [...STUDY, '--resume', '--out', out.study],
    };
    const names = ['attack', 'surface', 'study'] as const;
    const signals = ['SIGINT', 'SIGTERM', 'SIGKILL'] as const;
    const rng = new Rng(14);
    const outcomes: string[] = [];
    let killedBySigkill = 0;
    // Temps a SIGKILLed writer left (its pid is dead): removed by the next write of their path, and
    // never to be blamed on a later, cleanly interrupted command.
    let stale = new Set<string>();
    for (let i = 0; i < 24; i++) {
      const name = names[i % 3];
      const sig = signals[Math.floor(i / 3) % 3];
      const delay = Math.round(40 + rng.uniform() * (name === 'attack' ? 700 : 1400));
      const r = await killAfter(commands[name], sig, delay);
      const n = sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 9;
      // Finished before the signal (0), handled it (128 + n, temps removed), or died of it (default action).
      expect([0, 128 + n].includes(r.code ?? -1) || r.signal === sig, `${name} ${sig} after ${delay} ms: code ${r.code}, signal ${r.signal}`).toBe(true);
      outcomes.push(`${name}/${sig}/${delay}ms → ${r.signal ?? r.code}`);
      const left = temps(work);
      if (sig === 'SIGKILL') {
        if (r.signal === 'SIGKILL') killedBySigkill++;
        // A SIGKILLed writer may leave its temp: a dot-file named after its pid, never the output itself.
        for (const t of left) expect(t).toMatch(/(^|\/)\.[^/]+\.\d+\.\d+\.tmp$/);
        stale = new Set(left);
      } else {
        expect(left.filter((t) => !stale.has(t)), `${name} ${sig} after ${delay} ms left temps`).toEqual([]);
        stale = new Set(left);
      }
      // Whatever sits at an output path is complete.
      if (existsSync(out.attack)) expect(JSON.parse(readFileSync(out.attack, 'utf8')).format).toBe('dlg-attack-result/1');
      if (existsSync(out.png)) expect(PNG.sync.read(readFileSync(out.png)).width).toBeGreaterThan(0);
      if (existsSync(out.npy)) expect(readNpy(out.npy).shape).toEqual([1280, 1280]);
      const jsonl = join(out.study, 'results.jsonl');
      if (existsSync(jsonl)) {
        for (const row of readStudyResults(jsonl)) expect(withoutTiming(row)).toEqual(expected[row.key]);
      }
    }
    if (process.env.DLG_FAULTS_VERBOSE) console.log(outcomes.join("\n"));
    expect(killedBySigkill, outcomes.join('\n')).toBeGreaterThan(0);

    // The next complete run of each command clears stale temps of its own outputs.
    for (const name of names) {
      const r = await dlg(commands[name]);
      expect(r.code, `${name}: ${r.stderr}`).toBe(0);
    }
    expect(temps(work), outcomes.join('\n')).toEqual([]);
    expect(byKey(readStudyResults(join(out.study, 'results.jsonl')))).toEqual(expected);
    expect(readNpy(out.npy).shape).toEqual([1280, 1280]);
  });
});
