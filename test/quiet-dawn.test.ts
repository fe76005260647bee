import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error plain .mjs launcher helper, no types
import { dawnNoticeFilter } from '../scripts/quiet-dawn.mjs';

const U = 'Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.\n';
const S = 'Warning: maxDynamicStorageBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.\n';

function run(chunks: string[]): string {
  const f = dawnNoticeFilter();
  return chunks.map((c) => f.push(c)).join('') + f.flush();
}

describe('the Dawn notice filter of the dlg launcher', () => {
  it('drops exactly the two limit notices, whole or split across chunks', () => {
    expect(run([U + S + 'attack: done\n'])).toBe('attack: done\n');
    const all = 'a\n' + U + 'b\n' + S + 'c';
    for (let cut = 0; cut <= all.length; cut++) expect(run([all.slice(0, cut), all.slice(cut)])).toBe('a\nb\nc');
  });

  it('keeps every other line, other warnings and errors included, and passes partial lines at once', () => {
    const f = dawnNoticeFilter();
    expect(f.push('\r[=====     ] 50%')).toBe('\r[=====     ] 50%');
    expect(f.push(' more\n')).toBe(' more\n');
    expect(f.push('Warning: maxDynamicUniformBuffersPerPipelineLayout is odd\n')).toBe('Warning: maxDynamicUniformBuffersPerPipelineLayout is odd\n');
    expect(f.push('Error: device lost\n')).toBe('Error: device lost\n');
    expect(f.push('x ' + U)).toBe('x ' + U); // not at a line start: not Dawn's line
    expect(f.push('Warn')).toBe('');
    expect(f.flush()).toBe('Warn');
  });
});

describe('bin/dlg.js', () => {
  const dlg = (args: string[]) =>
    spawnSync(process.execPath, ['bin/dlg.js', ...args], { encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' } });

  it('runs a WebGPU command without Dawn\'s notices, and passes the exit code through', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dlg-quiet-'));
    try {
      const scenario = join(dir, 's.json');
      expect(dlg(['simulate', '--dataset', 'gaussian', '--batch', '2', '--features', '2', '--seed', '1', '--out', scenario]).status).toBe(0);
      const r = dlg(['attack', scenario, '--restarts', '4', '--iterations', '10', '--out', join(dir, 'r.json')]);
      expect(r.stderr).not.toMatch(/artificially reduced/);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^attack \(optimize, webgpu/);
      const bad = dlg(['attack', join(dir, 'missing.json')]);
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(/no such file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
