// Dawn prints two harmless notices from native code, straight to fd 2, whenever it enumerates a
// Vulkan adapter whose descriptor limits exceed its own (lavapipe reports 1000000):
//   Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 …
// Requesting smaller limits does not help (they are printed before any device exists), and a
// Node process cannot redirect its own fd 2, so the launchers run the command as a child with
// stderr piped through this filter. Only these two exact lines are dropped; everything else,
// errors included, passes through unchanged and at once.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { clearLine, clearScreenDown, cursorTo, moveCursor } from 'node:readline';

export const DAWN_LIMIT_NOTICE =
  /^Warning: maxDynamic(?:Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.\r?$/;
const PREFIX = 'Warning: maxDynamic';

/** A streaming filter: push(text) returns what to print now; flush() returns what is left. */
export function dawnNoticeFilter() {
  let held = ''; // the start of a line that may still become a notice
  let atLineStart = true;
  function push(text) {
    let out = '';
    let rest = held + text;
    held = '';
    while (rest.length > 0) {
      if (!atLineStart) {
        const nl = rest.indexOf('\n');
        if (nl < 0) return out + rest;
        out += rest.slice(0, nl + 1);
        rest = rest.slice(nl + 1);
        atLineStart = true;
        continue;
      }
      const nl = rest.indexOf('\n');
      const line = nl < 0 ? rest : rest.slice(0, nl);
      const maybeNotice = line.startsWith(PREFIX) || PREFIX.startsWith(line);
      if (nl < 0) {
        if (maybeNotice) held = rest;
        else {
          out += rest;
          atLineStart = false;
        }
        return out;
      }
      if (!DAWN_LIMIT_NOTICE.test(line)) out += rest.slice(0, nl + 1);
      rest = rest.slice(nl + 1);
    }
    return out;
  }
  function flush() {
    const out = held;
    held = '';
    return out;
  }
  return { push, flush };
}

/**
 * Runs `node args…` with stdin/stdout inherited and stderr filtered; resolves to the exit code
 * (re-raising a signal that killed the child). A TTY stderr is announced to the child through
 * DLG_STDERR_TTY/DLG_STDERR_COLUMNS so that its progress bar still draws (see ttyStderr()).
 */
export function runQuiet(args, env = process.env) {
  const err = process.stderr;
  const childEnv = { ...env };
  if (err.isTTY) {
    childEnv.DLG_STDERR_TTY = '1';
    childEnv.DLG_STDERR_COLUMNS = String(err.columns ?? 80);
  }
  const child = spawn(process.execPath, args, { stdio: ['inherit', 'inherit', 'pipe'], env: childEnv });
  const filter = dawnNoticeFilter();
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    const out = filter.push(chunk);
    if (out) err.write(out);
  });
  // The terminal sends SIGINT to the whole process group, so the child usually has it already; a SIGINT
  // sent to this process alone (kill -INT, timeout -s INT) reaches the child after a short grace.
  const forward = (sig) => () => child.kill(sig);
  process.on('SIGINT', () => {
    setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    }, 200).unref();
  });
  process.on('SIGTERM', forward('SIGTERM'));
  process.on('SIGHUP', forward('SIGHUP'));
  return new Promise((resolve) => {
    child.on('error', (e) => {
      err.write(`dlg: could not start node: ${e.message}\n`);
      resolve(1);
    });
    child.on('close', (code, signal) => {
      const rest = filter.flush();
      if (rest) err.write(rest);
      if (signal) {
        process.removeAllListeners(signal);
        process.kill(process.pid, signal);
      }
      resolve(code ?? 1);
    });
  });
}

/** In the child: make a piped stderr that the parent prints to a TTY behave like one. */
export function ttyStderr() {
  const err = process.stderr;
  if (err.isTTY || process.env.DLG_STDERR_TTY !== '1') return;
  Object.assign(err, {
    isTTY: true,
    columns: Number(process.env.DLG_STDERR_COLUMNS) || 80,
    cursorTo: (x, y, cb) => cursorTo(err, x, y, cb),
    moveCursor: (dx, dy, cb) => moveCursor(err, dx, dy, cb),
    clearLine: (dir, cb) => clearLine(err, dir, cb),
    clearScreenDown: (cb) => clearScreenDown(err, cb),
  });
}

// As a command: `node scripts/quiet-dawn.mjs <script.js> [args…]` runs `node <script.js> args…`
// with the filter (npm test runs vitest this way).
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv.length < 3) {
    process.stderr.write('usage: node scripts/quiet-dawn.mjs <script.js> [args...]\n');
    process.exit(2);
  }
  process.exitCode = await runQuiet(process.argv.slice(2));
}
