/**
 * Node file I/O: scenario files, JSON, atomic writes (temp file + rename, so no partial
 * output is ever left behind).
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, accessSync, constants, statSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { DlgInputError, describe } from './errors.js';
import { type Scenario, parseScenario, scenarioToJson } from './scenario.js';

/** Reads and parses a JSON file; errors name the file and what is wrong with it. */
export function readJsonFile(field: string, path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new DlgInputError(field, 'a readable JSON file', `${path} (${code === 'ENOENT' ? 'no such file' : code ?? (err as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new DlgInputError(field, 'valid JSON', `${path}: ${(err as Error).message}`);
  }
}

export function readScenarioFile(path: string): Scenario {
  return parseScenario(readJsonFile('scenario', path));
}

/**
 * Checks up front that `path` can be written (its folder exists and is writable), so a
 * long computation does not end in a failed write.
 */
export function checkWritable(field: string, path: string): void {
  const dir = dirname(path);
  try {
    if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new DlgInputError(field, 'a path in an existing, writable folder', `${path} (${(err as Error).message})`);
  }
  try {
    if (statSync(path).isDirectory()) throw new DlgInputError(field, 'a file path', `${path} (a directory)`);
  } catch (err) {
    if (err instanceof DlgInputError) throw err;
  }
}

/** Writes data to `path` atomically: a temp file in the same folder, then rename. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value) + '\n');
}

export function writeScenarioFile(path: string, s: Scenario): void {
  writeJsonAtomic(path, scenarioToJson(s));
}

export function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true });
}

export { describe };
