// `npm run demo`: bundles the explorer page (src/web) with esbuild into dist/web and serves it,
// plus the iris/digits tables from data/ and the library bundle dist/browser/dlg.js (as /lib/dlg.js), on http://127.0.0.1:<port>/ with node:http.
// Usage: node scripts/demo.mjs [--port 8080] [--host 127.0.0.1] [--build-only]
// Tests import buildDemo/startDemoServer from here, so the page they drive is the one users get.
import { build } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The project root: the nearest folder above this file with package.json (this file may be bundled into dist/run). */
function findRoot() {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'src', 'web', 'main.ts'))) return dir;
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}
const ROOT = findRoot();
export const WEB_OUT = join(ROOT, 'dist', 'web');

const STATIC = ['index.html', 'styles.css'];
/** The only data files the page may fetch (served as raw bytes; the page gunzips digits itself). */
const DATA_FILES = { 'iris.csv': 'text/csv; charset=utf-8', 'digits.csv.gz': 'application/gzip' };
const TYPES = { '.html': 'text/html; charset=utf-8', '.css': 'text/css; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.map': 'application/json' };

/** Bundles src/web/main.ts (browser platform, ESM) and copies the static files. Returns the esbuild metafile. */
export async function buildDemo({ outdir = WEB_OUT, minify = false } = {}) {
  mkdirSync(outdir, { recursive: true });
  const result = await build({
    entryPoints: { main: join(ROOT, 'src', 'web', 'main.ts') },
    outdir,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    loader: { '.wgsl': 'text' },
    sourcemap: true,
    minify,
    metafile: true,
    logLevel: 'warning',
  });
  for (const f of STATIC) copyFileSync(join(ROOT, 'src', 'web', f), join(outdir, f));
  return result.metafile;
}

/**
 * Serves `root` (the built page) and the data tables. Resolves to { server, url, close() }.
 * port 0 picks a free ephemeral port.
 */
export function startDemoServer({ root = WEB_OUT, dataDir = join(ROOT, 'data'), port = 8080, host = '127.0.0.1' } = {}) {
  const server = createServer((req, res) => {
    let path;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('bad request\n');
      return;
    }
    let file;
    let type;
    if (path === '/' || path === '/index.html') {
      file = join(root, 'index.html');
      type = TYPES['.html'];
    } else if (path === '/lib/dlg.js' || path === '/lib/dlg.js.map') {
      // The library's own browser bundle (scripts/build.mjs), for pages that import it directly.
      file = join(ROOT, 'dist', 'browser', path.slice(5));
      type = TYPES[path.slice(path.lastIndexOf('.'))];
    } else if (path.startsWith('/data/') && Object.hasOwn(DATA_FILES, path.slice(6))) {
      file = join(dataDir, path.slice(6));
      type = DATA_FILES[path.slice(6)];
    } else if (/^\/[A-Za-z0-9_.-]+$/.test(path) && !path.includes('..')) {
      file = join(root, path.slice(1));
      type = TYPES[path.slice(path.lastIndexOf('.'))] ?? 'application/octet-stream';
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (!file || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`not found: ${path}\n`);
      return;
    }
    const body = readFileSync(file);
    res.writeHead(200, { 'content-type': type, 'content-length': body.length, 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const addr = server.address();
      const url = `http://${host}:${addr.port}/`;
      resolvePromise({ server, url, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}

function parseArgs(argv) {
  const out = { port: 8080, host: '127.0.0.1', buildOnly: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port') out.port = Number(argv[++i]);
    else if (a === '--host') out.host = argv[++i];
    else if (a === '--build-only') out.buildOnly = true;
    else {
      process.stderr.write(`demo: unknown argument ${JSON.stringify(a)}\nusage: node scripts/demo.mjs [--port N] [--host H] [--build-only]\n`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(out.port) || out.port < 0 || out.port > 65535) {
    process.stderr.write(`demo: --port: expected an integer in [0, 65535], found ${argv[argv.indexOf('--port') + 1]}\n`);
    process.exit(2);
  }
  return out;
}

// Run as a script (not when imported, nor when bundled into another entry by scripts/run-ts.mjs).
const selfPath = fileURLToPath(import.meta.url);
if (process.argv[1] && selfPath.endsWith(join('scripts', 'demo.mjs')) && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const args = parseArgs(process.argv.slice(2));
  await buildDemo();
  process.stdout.write(`built ${join('dist', 'web')}\n`);
  if (!args.buildOnly) {
    try {
      const { url } = await startDemoServer({ port: args.port, host: args.host });
      process.stdout.write(`dlg-webgpu explorer: ${url}\n(open it in a browser with WebGPU: Chrome/Edge 113+; on Linux start Chrome with --enable-unsafe-webgpu. Ctrl-C stops the server.)\n`);
    } catch (err) {
      process.stderr.write(`demo: cannot listen on ${args.host}:${args.port}: ${err.message}\n(try --port 0 for any free port)\n`);
      process.exit(1);
    }
  }
}
