// Set-up that `npm start` and `npm test` run first, on any machine, with no dependencies:
// 1. npm dependencies (npm ci when node_modules is missing or older than the lock file);
// 2. a WebGPU adapter: on Linux with none, install Mesa's lavapipe when root, else print the commands;
// 3. with --browser: Debian's chromium for the browser tests (when root).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const wantBrowser = process.argv.includes('--browser');
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const log = (m) => process.stderr.write(`ensure: ${m}\n`);

function npmDepsStale() {
  const marker = join(root, 'node_modules', '.package-lock.json');
  if (!existsSync(marker)) return true;
  return statSync(join(root, 'package-lock.json')).mtimeMs > statSync(marker).mtimeMs + 1000;
}

if (npmDepsStale()) {
  log('installing npm dependencies (npm ci)');
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
}

function adapterName() {
  const probe = `
    process.env.XDG_RUNTIME_DIR ??= '/tmp';
    const { create, globals } = await import('webgpu');
    Object.assign(globalThis, globals);
    const a = await create([]).requestAdapter();
    process.stdout.write(a ? (a.info.description || a.info.device || 'unnamed adapter') : '');
    process.exit(0);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  return r.status === 0 ? r.stdout.trim() : '';
}

const setup = join(root, 'scripts', 'setup-system.sh');
let name = adapterName();
if (!name && process.platform === 'linux') {
  if (isRoot) {
    log('no WebGPU adapter: installing Mesa lavapipe (scripts/setup-system.sh)');
    execFileSync('bash', [setup], { stdio: 'inherit' });
    name = adapterName();
  } else {
    log('no WebGPU adapter found. Install Mesa\'s lavapipe Vulkan driver, as root:');
    log('  sudo bash scripts/setup-system.sh');
    log('(it adds bookworm-backports and runs: apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1)');
  }
}
if (!name) {
  log('still no WebGPU adapter: GPU tests and commands will fail with instructions.');
} else {
  log(`WebGPU adapter: ${name}`);
}

if (wantBrowser && process.platform === 'linux' && !existsSync('/usr/bin/chromium')) {
  if (isRoot) {
    log('installing Debian chromium for the browser tests');
    execFileSync('bash', [setup, '--browser'], { stdio: 'inherit' });
  } else {
    log('browser tests need Debian chromium: sudo apt-get install -y chromium');
  }
}
