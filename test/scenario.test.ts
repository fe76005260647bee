/**
 * The dlg-scenario/1 format: round trips, and every bad-input case of issue 2, both through the
 * API (DlgInputError naming the field) and through the CLI (exit 2, field on stderr, nothing written).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { simulateScenario } from '../src/core/datasets.js';
import { DlgInputError } from '../src/core/errors.js';
import { readJsonFile, readScenarioFile, writeScenarioFile } from '../src/node/io.js';
import type { Layer } from '../src/core/model.js';
import { SCENARIO_FORMAT, type Scenario, makeScenario, parseFakeBatches, parseScenario, scenarioToJson } from '../src/core/scenario.js';

const dir = mkdtempSync(join(tmpdir(), 'dlg-scenario-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// At most 4 `dlg` processes at once: the CI machine has 2 cores shared with other jobs.
let running = 0;
const waiting: (() => void)[] = [];
async function dlg(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  if (running >= 4) await new Promise<void>((r) => waiting.push(r));
  running++;
  try {
    return await spawnDlg(args);
  } finally {
    running--;
    waiting.shift()?.();
  }
}

function spawnDlg(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['dist/node/cli.js', ...args], { env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' } }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
    });
  });
}

function expectSameScenario(a: Scenario, b: Scenario): void {
  expect([b.B, b.D, b.K, b.reduction]).toEqual([a.B, a.D, a.K, a.reduction]);
  expect(b.W).toEqual(a.W);
  expect(b.b).toEqual(a.b);
  expect(b.y).toEqual(a.y);
  expect(b.gradient.W).toEqual(a.gradient.W);
  expect(b.gradient.b).toEqual(a.gradient.b);
  expect(b.inputs).toEqual(a.inputs);
}

// A small hand-written scenario: B=2, D=3, K=2.
const layer: Layer = {
  B: 2, D: 3, K: 2, reduction: 'mean',
  W: [0.1, -0.2, 0.3, 0.4, -0.5, 0.6],
  b: [0, 0.1],
  y: [1, 0, 0, 1],
};
const inputs = [1, 2, 3, -1, 0.5, 2];
const base = scenarioToJson(makeScenario(layer, inputs));
const clone = (): Record<string, any> => JSON.parse(JSON.stringify(base));
/** JSON cannot hold Infinity; the string "INF" becomes the literal 1e999, which JSON.parse reads as Infinity. */
const withHuge = (o: unknown) => ({ text: JSON.stringify(o).replaceAll('"INF"', '1e999').replaceAll('"-INF"', '-1e999') });

interface BadCase {
  what: string;
  field: string;
  /** File text, or a path that does not exist. */
  text?: string;
  missing?: boolean;
}

function bad(what: string, field: string, edit: (o: Record<string, any>) => unknown): BadCase {
  const o = clone();
  const r = edit(o);
  // An edit may return {text} for content JSON.stringify cannot produce (1e999).
  const text = r !== null && typeof r === 'object' && 'text' in r ? (r as { text: string }).text : JSON.stringify(o);
  return { what, field, text };
}

const scenarioCases: BadCase[] = [
  { what: 'missing file', field: 'scenario', missing: true },
  { what: 'non-JSON content', field: 'scenario', text: '{"format": "dlg-scenario/1", "weights": [[1,' },
  { what: 'not an object', field: 'scenario', text: '[1, 2, 3]' },
  bad('wrong format tag', 'format', (o) => (o.format = 'dlg-scenario/2')),
  bad('missing format tag', 'format', (o) => delete o.format),
  bad('unknown reduction', 'reduction', (o) => (o.reduction = 'max')),
  bad('weights not an array', 'weights', (o) => (o.weights = { d: 1 })),
  bad('ragged weights', 'weights[1]', (o) => (o.weights[1] = [0.3])),
  bad('ragged labels', 'labels[1]', (o) => (o.labels[1] = [0])),
  bad('ragged inputs', 'inputs[1]', (o) => (o.inputs[1] = [1, 2])),
  bad('ragged gradient.weights', 'gradient.weights[2]', (o) => (o.gradient.weights[2] = [1, 2, 3])),
  bad('bias length differs from K', 'bias', (o) => (o.bias = [0])),
  bad('labels columns differ from K', 'labels[0]', (o) => (o.labels = [[1, 0, 0], [0, 1, 0]])),
  bad('gradient.weights rows differ from D', 'gradient.weights', (o) => o.gradient.weights.pop()),
  bad('gradient.weights columns differ from K', 'gradient.weights[0]', (o) => (o.gradient.weights = o.gradient.weights.map((r: number[]) => [...r, 0]))),
  bad('gradient.bias length differs from K', 'gradient.bias', (o) => o.gradient.bias.push(0)),
  bad('inputs rows differ from B', 'inputs', (o) => o.inputs.push([0, 0, 0])),
  bad('inputs columns differ from D', 'inputs[0]', (o) => (o.inputs = [[1, 2], [3, 4]])),
  bad('gradient not an object', 'gradient', (o) => (o.gradient = [1, 2])),
  bad('neither gradient nor inputs', 'gradient', (o) => {
    delete o.gradient;
    delete o.inputs;
  }),
  bad('the string "NaN" in weights', 'weights[0][0]', (o) => (o.weights[0][0] = 'NaN')),
  bad('null in bias', 'bias[1]', (o) => (o.bias[1] = null)),
  bad('a boolean in inputs', 'inputs[0][2]', (o) => (o.inputs[0][2] = true)),
  bad('an array in place of a number', 'gradient.bias[0]', (o) => (o.gradient.bias[0] = [1])),
  bad('1e999 (Infinity) in labels', 'labels[0][0]', (o) => ((o.labels[0][0] = 'INF'), withHuge(o))),
  bad('1e999 (Infinity) in gradient.weights', 'gradient.weights[1][1]', (o) => ((o.gradient.weights[1][1] = 'INF'), withHuge(o))),
  bad('-1e999 (-Infinity) in inputs', 'inputs[1][0]', (o) => ((o.inputs[1][0] = '-INF'), withHuge(o))),
  bad('1e999 in weights', 'weights[2][1]', (o) => ((o.weights[2][1] = 'INF'), withHuge(o))),
  bad('label above 1', 'labels[0][0]', (o) => (o.labels[0][0] = 1.5)),
  bad('label below 0', 'labels[1][1]', (o) => (o.labels[1][1] = -0.25)),
  bad('D = 0 (no weight rows)', 'weights', (o) => (o.weights = [])),
  bad('K = 0 (empty weight rows)', 'weights[0]', (o) => (o.weights = [[], [], []])),
  bad('B = 0 (no label rows)', 'labels', (o) => (o.labels = [])),
];

describe('scenario format', () => {
  it('round trips through JSON text and through files, for every data set shape', () => {
    for (const s of [
      simulateScenario({ dataset: 'gaussian', B: 3, D: 4, K: 2, seed: 1, biasScale: 0.2, reduction: 'sum' }),
      makeScenario(layer, inputs),
    ]) {
      const json = scenarioToJson(s);
      expect(json.format).toBe(SCENARIO_FORMAT);
      expect(json.weights.length).toBe(s.D);
      expect(json.weights[0].length).toBe(s.K);
      expect(json.labels.length).toBe(s.B);
      expectSameScenario(s, parseScenario(JSON.parse(JSON.stringify(json))));
      const path = join(dir, `round-${s.D}.json`);
      writeScenarioFile(path, s);
      expectSameScenario(s, readScenarioFile(path));
    }
  });

  it('weights[d][k] is row d of W (input feature d)', () => {
    const s = parseScenario(base);
    expect(s.W[1 * 2 + 0]).toBe(base.weights[1][0]);
    expect(base.weights[1][0]).toBe(0.3);
  });

  it('gradient may be omitted when inputs are given: it is computed', () => {
    const o = clone();
    delete o.gradient;
    const s = parseScenario(o);
    const full = parseScenario(base);
    expect(s.gradient.W).toEqual(full.gradient.W);
    expect(s.gradient.b).toEqual(full.gradient.b);
  });

  it('inputs are optional (a real attacker lacks them) and reduction defaults to mean', () => {
    const o = clone();
    delete o.inputs;
    delete o.reduction;
    const s = parseScenario(o);
    expect(s.inputs).toBeUndefined();
    expect(s.reduction).toBe('mean');
    expect(Array.from(s.gradient.W)).toEqual(base.gradient!.weights.flat());
  });

  it.each(scenarioCases.map((c) => [c.what, c] as const))('API rejects %s, naming the field', (_what, c) => {
    const path = join(dir, `api-${c.what.replace(/\W+/g, '_')}.json`);
    if (!c.missing) writeFileSync(path, c.text!);
    let err: unknown;
    try {
      readScenarioFile(path);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DlgInputError);
    expect((err as DlgInputError).field).toBe(c.field);
    expect((err as DlgInputError).message).toMatch(/expected .+, found .+/);
  });

  it('fake inputs: B×D gives P = 1, P×B×D gives P batches, bad shapes name the field', () => {
    expect(parseFakeBatches('fake', [[1, 2, 3], [4, 5, 6]], 2, 3).P).toBe(1);
    const r = parseFakeBatches('fake', [[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [0, 1, 2]]], 2, 3);
    expect(r.P).toBe(2);
    expect(Array.from(r.x)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]);
    for (const [v, field] of fakeCases) {
      let err: unknown;
      try {
        parseFakeBatches('fake', JSON.parse(v), 2, 3);
      } catch (e) {
        err = e;
      }
      expect(err, v).toBeInstanceOf(DlgInputError);
      expect((err as DlgInputError).field, v).toBe(field);
    }
  });

  it('readJsonFile names the file when it is missing or not JSON', () => {
    expect(() => readJsonFile('--fake', join(dir, 'nope.json'))).toThrow(/--fake: expected a readable JSON file, found .*no such file/);
    writeFileSync(join(dir, 'notjson.json'), 'not json');
    expect(() => readJsonFile('--fake', join(dir, 'notjson.json'))).toThrow(/--fake: expected valid JSON/);
  });
});

/** Fake-input files that must be refused (for a B=2, D=3 scenario), with the field named. */
const fakeCases: [string, string][] = [
  ['[]', 'fake'], // P = 0
  ['{"x": 1}', 'fake'],
  ['[[1, 2, 3]]', 'fake'], // 1 row, B = 2
  ['[[1, 2, 3], [4, 5]]', 'fake[1]'], // ragged
  ['[[1, 2], [3, 4]]', 'fake[0]'], // D = 2
  ['[[1, "2", 3], [4, 5, 6]]', 'fake[0][1]'],
  ['[[1, 2, 3], [4, null, 6]]', 'fake[1][1]'],
  ['[[1, 2, 3], [4, 5, 1e999]]', 'fake[1][2]'],
  ['[[[1, 2, 3], [4, 5, 6]], []]', 'fake[1]'],
  ['[[[1, 2, 3], [4, 5, 6]], [[1, 2, 3]]]', 'fake[1]'],
  ['[[[1, 2, 3], [4, 5, 6]], [[1, 2, 3], [4, 5, 6, 7]]]', 'fake[1][1]'],
];

describe('CLI on bad input: exit 2, the field on stderr, nothing on stdout, nothing written', () => {
  const good = join(dir, 'good.json');
  const goodFake = join(dir, 'good-fake.json');
  writeFileSync(good, JSON.stringify(base));
  writeFileSync(goodFake, JSON.stringify([[0.5, 0.5, 0.5], [-0.5, 0, 1]]));

  it('a good scenario and fake file pass (the control case)', async () => {
    const r = await dlg(['eval', good, '--fake', goodFake, '--backend', 'cpu', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(Object.keys(JSON.parse(r.stdout))).toEqual(['loss', 'gradient']);
  });

  it('every bad scenario file', async () => {
    const before = new Set(readdirSync(dir));
    const runs = await Promise.all(
      scenarioCases.map(async (c) => {
        const path = join(dir, `cli-${c.what.replace(/\W+/g, '_')}.json`);
        if (!c.missing) writeFileSync(path, c.text!);
        return { c, r: await dlg(['eval', path, '--fake', goodFake, '--backend', 'cpu', '--json']) };
      }),
    );
    for (const { c, r } of runs) {
      expect(r.code, `${c.what}: ${r.stderr}`).toBe(2);
      expect(r.stderr, c.what).toContain(`dlg: error: ${c.field}: expected`);
      expect(r.stdout, c.what).toBe('');
    }
    // Only the bad files this test wrote are new: no output, no temp files.
    const added = readdirSync(dir).filter((f) => !before.has(f));
    expect(added.every((f) => f.startsWith('cli-') && !f.endsWith('.tmp'))).toBe(true);
  });

  it('every bad fake-input file', async () => {
    const runs = await Promise.all([
      ...fakeCases.map(async ([text, field], i) => {
        const path = join(dir, `fake-${i}.json`);
        writeFileSync(path, text);
        return { what: text, field, r: await dlg(['eval', good, '--fake', path, '--backend', 'cpu', '--json']) };
      }),
      (async () => ({ what: 'missing fake file', field: '--fake', r: await dlg(['eval', good, '--fake', join(dir, 'absent.json'), '--backend', 'cpu']) }))(),
      (async () => {
        const path = join(dir, 'fake-notjson.json');
        writeFileSync(path, '[[1, 2, 3], [4, 5');
        return { what: 'non-JSON fake file', field: '--fake', r: await dlg(['eval', good, '--fake', path, '--backend', 'cpu']) };
      })(),
    ]);
    for (const { what, field, r } of runs) {
      expect(r.code, `${what}: ${r.stderr}`).toBe(2);
      expect(r.stderr, what).toContain(`dlg: error: ${field}: expected`);
      expect(r.stdout, what).toBe('');
    }
  });

  it('B, D, K of zero, negative or non-integer (and other bad flags) on `dlg simulate`', async () => {
    const cases: [string[], string][] = [
      [['--batch', '0'], '--batch'],
      [['--batch', '-1'], '--batch'],
      [['--batch', '1.5'], '--batch'],
      [['--batch', 'two'], '--batch'],
      [['--batch', '2', '--features', '0'], '--features'],
      [['--batch', '2', '--features', '-3'], '--features'],
      [['--batch', '2', '--features', '2.5'], '--features'],
      [['--batch', '2', '--outputs', '0'], '--outputs'],
      [['--batch', '2', '--outputs', '-1'], '--outputs'],
      [['--batch', '2', '--outputs', '1e0.5'], '--outputs'],
      [['--batch', '2', '--seed', '-1'], '--seed'],
      [['--batch', '2', '--seed', '0.5'], '--seed'],
      [['--batch', '2', '--bias-scale', '-1'], '--bias-scale'],
      [['--batch', '2', '--bias-scale', 'NaN'], '--bias-scale'],
      [['--batch', '2', '--reduction', 'max'], '--reduction'],
      [['--batch', '2', '--dataset', 'mnist'], '--dataset'],
      [['--batch', '2', '--dataset', 'iris', '--features', '5'], '--features'],
      [['--batch', '2', '--dataset', 'digits', '--outputs', '3'], '--outputs'],
      [['--batch', '151', '--dataset', 'iris'], '--batch'],
    ];
    const runs = await Promise.all(
      cases.map(async ([flags, field], i) => {
        const out = join(dir, `sim-bad-${i}.json`);
        // Defaults first; later flags override (commander keeps the last value).
        const args = ['simulate', '--dataset', 'gaussian', '--seed', '1', '--out', out, ...flags];
        return { flags, field, out, r: await dlg(args) };
      }),
    );
    for (const { flags, field, out, r } of runs) {
      const what = flags.join(' ');
      expect(r.code, `${what}: ${r.stderr}`).toBe(2);
      expect(r.stderr, what).toContain(field);
      expect(r.stdout, what).toBe('');
      expect(existsSync(out), `${what}: output written`).toBe(false);
    }
  });

  it('missing required flags and an unwritable --out', async () => {
    const out = join(dir, 'never.json');
    const runs = await Promise.all([
      dlg(['simulate', '--dataset', 'gaussian', '--seed', '1', '--out', out]).then((r) => ({ r, field: '--batch' })),
      dlg(['simulate', '--dataset', 'gaussian', '--batch', '2', '--out', out]).then((r) => ({ r, field: '--seed' })),
      dlg(['simulate', '--batch', '2', '--seed', '1', '--out', out]).then((r) => ({ r, field: '--dataset' })),
      dlg(['simulate', '--dataset', 'gaussian', '--batch', '2', '--seed', '1']).then((r) => ({ r, field: '--out' })),
      dlg(['simulate', '--dataset', 'gaussian', '--batch', '2', '--seed', '1', '--out', join(dir, 'no-such-dir', 'x.json')]).then((r) => ({ r, field: '--out' })),
      dlg(['simulate', '--dataset', 'gaussian', '--batch', '2', '--seed', '1', '--out', dir]).then((r) => ({ r, field: '--out' })),
      dlg(['eval', good, '--backend', 'cpu']).then((r) => ({ r, field: '--fake' })),
      dlg(['eval', '--fake', goodFake, '--backend', 'cpu']).then((r) => ({ r, field: 'scenario' })),
      dlg(['eval', good, '--fake', goodFake, '--backend', 'cuda']).then((r) => ({ r, field: '--backend' })),
    ]);
    for (const { r, field } of runs) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(field);
      expect(r.stdout).toBe('');
    }
    expect(existsSync(out)).toBe(false);
    expect(existsSync(join(dir, 'no-such-dir'))).toBe(false);
  });

  it('a file that exists is not touched by a failing run', async () => {
    const out = join(dir, 'keep.json');
    writeFileSync(out, 'previous contents');
    const r = await dlg(['simulate', '--dataset', 'iris', '--batch', '2', '--features', '7', '--seed', '1', '--out', out]);
    expect(r.code).toBe(2);
    expect(readFileSync(out, 'utf8')).toBe('previous contents');
  });
});
