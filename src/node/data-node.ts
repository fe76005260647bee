/**
 * Node loader of the data sets shipped in the project's data/ folder (see data/SOURCES.md).
 * Works from the TypeScript sources (src/) and from the bundles (dist/node/).
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { DATASET_INFO, type DatasetRows, parseDatasetCsv } from '../core/datasets.js';
import { DlgRuntimeError } from '../core/errors.js';

/** The data/ folder: ../data from src/, ../../data from dist/node/. */
export function dataDir(): string {
  const candidates = ['../data/', '../../data/'].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
  for (const dir of candidates) if (existsSync(`${dir}SOURCES.md`)) return dir;
  throw new DlgRuntimeError(`The shipped data folder was not found (looked in ${candidates.join(', ')}); reinstall dlg-webgpu.`);
}

const cache = new Map<string, DatasetRows>();

/** Loads and parses iris or digits (cached per process). Raw values; simulateScenario scales them. */
export function loadDataset(name: 'iris' | 'digits'): DatasetRows {
  const hit = cache.get(name);
  if (hit) return hit;
  const info = DATASET_INFO[name];
  if (!info) throw new DlgRuntimeError(`Unknown shipped data set ${JSON.stringify(name)}`);
  const path = `${dataDir()}${info.file}`;
  let text: string;
  try {
    const bytes = readFileSync(path);
    text = (info.gzip ? gunzipSync(bytes) : bytes).toString('utf8');
  } catch (err) {
    throw new DlgRuntimeError(`Could not read the shipped data set ${path}: ${(err as Error).message}`);
  }
  let rows: DatasetRows;
  try {
    rows = parseDatasetCsv(name, text);
  } catch (err) {
    // A damaged shipped file is the installation's fault, not the user's input: exit 1.
    throw new DlgRuntimeError(`The shipped data set ${path} is damaged: ${(err as Error).message}`);
  }
  cache.set(name, rows);
  return rows;
}
