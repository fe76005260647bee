/**
 * Fetches the real data tables for the page (served by scripts/demo.mjs from data/) and parses them
 * with the library's parseDatasetCsv. digits.csv.gz is gunzipped in the browser with DecompressionStream.
 */
import { DATASET_INFO, type DatasetRows, parseDatasetCsv } from '../core/datasets.js';

async function fetchOk(url: string): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (err) {
    throw new Error(`could not fetch ${url}: ${(err as Error).message}`);
  }
  if (!res.ok) throw new Error(`could not fetch ${url}: HTTP ${res.status} (serve the page with \`npm run demo\`, which serves data/)`);
  return res;
}

export async function fetchTable(name: 'iris' | 'digits', base = 'data/'): Promise<DatasetRows> {
  const info = DATASET_INFO[name];
  const res = await fetchOk(`${base}${info.file}`);
  let text: string;
  if (info.gzip) {
    if (typeof DecompressionStream === 'undefined') throw new Error(`this browser lacks DecompressionStream, needed to read ${info.file}`);
    text = await new Response(res.body!.pipeThrough(new DecompressionStream('gzip'))).text();
  } else {
    text = await res.text();
  }
  return parseDatasetCsv(name, text);
}

const cache = new Map<string, Promise<DatasetRows>>();
/** Each table is fetched once per page; a failed fetch is forgotten so a retry can succeed. */
export function loadTable(name: 'iris' | 'digits'): Promise<DatasetRows> {
  let p = cache.get(name);
  if (!p) {
    p = fetchTable(name);
    p.catch(() => cache.delete(name));
    cache.set(name, p);
  }
  return p;
}
