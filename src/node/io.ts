/**
 * Node file I/O: scenario files, JSON, and outputs that never destroy anything.
 *
 * Every output is written to a temp file in its own folder, then renamed over the target, so no
 * partial output is ever left at the path. Before any work starts, `checkOutputPath` does what
 * the write will do (a temp file in the same folder, then a rename) and refuses a path that is
 * not a regular file (device, FIFO, socket, symlink, folder) or that is an input or another
 * output of the same command (`checkDistinctPaths`, real paths compared). Temp files are
 * registered while they live: SIGINT/SIGTERM remove them (exit 130/143, `installSignalCleanup`);
 * a temp left by a SIGKILLed process is named `.<name>.<pid>.<time>.tmp` and removed by the next
 * write to the same path once that pid is gone (`removeStaleTemps`).
 */
import {
  closeSync, constants, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, realpathSync, renameSync, rmSync,
  statSync, type Stats, writeSync,
} from 'node:fs';
import { totalmem } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { DlgInputError, describe } from '../core/errors.js';
import { type Scenario, parseScenario, scenarioToJson, unknownScenarioKeys } from '../core/scenario.js';

// ------------------------------------------------------------------ reading

/** Reads and parses a JSON file; errors name the file and what is wrong with it. */
export function readJsonFile(field: string, path: string): unknown {
  let text: string;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw Object.assign(new Error(kindOf(st)), { code: kindOf(st) });
    if (st.size > MAX_JSON_BYTES) {
      throw new DlgInputError(field, `a JSON file of at most ${formatBytes(MAX_JSON_BYTES)}`, `${path} (${formatBytes(st.size)})`);
    }
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof DlgInputError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new DlgInputError(field, 'a readable JSON file', `${path} (${code === 'ENOENT' ? 'no such file' : code ?? (err as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new DlgInputError(field, 'valid JSON', `${path}: ${(err as Error).message}`);
  }
}

let strictScenarios = false;
/** With --strict, unknown keys in a scenario file are an error instead of a warning. */
export function setStrict(on: boolean): void {
  strictScenarios = on;
}

export function readScenarioFile(path: string, opts: { strict?: boolean } = {}): Scenario {
  const json = readJsonFile('scenario', path);
  const s = parseScenario(json);
  const unknown = unknownScenarioKeys(json);
  if (unknown.length > 0) {
    const list = unknown.map((k) => JSON.stringify(k)).join(', ');
    if (opts.strict ?? strictScenarios) {
      throw new DlgInputError(`scenario ${path}`, 'only the keys format, reduction, weights, bias, labels, gradient, inputs, defence (--strict)', `unknown key(s) ${list}`);
    }
    process.stderr.write(`dlg: warning: scenario ${path}: unknown key(s) ${list} ignored (known: format, reduction, weights, bias, labels, gradient, inputs, defence; --strict refuses them)\n`);
  }
  return s;
}

// ------------------------------------------------------------------ sizes

/** The largest JSON file read (V8 strings stop at about 512 MiB). */
export const MAX_JSON_BYTES = 256 * 2 ** 20;

function formatBytes(n: number): string {
  if (n >= 2 ** 40) return `${(n / 2 ** 40).toFixed(1)} TiB`;
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} bytes`;
}

/** Host memory a command may plan to use: half of this machine's RAM. */
export function memoryBudget(): number {
  return Math.floor(0.5 * totalmem());
}

/**
 * Refuses work that would need more than `memoryBudget()` bytes, or a single typed array
 * longer than 2³¹ − 1 elements, before anything is allocated. `what` says what needs it.
 */
export function checkMemory(field: string, found: string, need: { bytes: number; largestArray?: number; what: string }): void {
  const budget = memoryBudget();
  if (!(need.bytes <= budget) || (need.largestArray ?? 0) > 2 ** 31 - 1) {
    throw new DlgInputError(
      field,
      `a size whose work fits in memory (at most ${formatBytes(budget)}, half of this machine's RAM)`,
      `${found}: ${need.what} needs about ${formatBytes(need.bytes)}`,
    );
  }
}

/** About how many characters one float64 takes in a JSON file ("-1.2345678901234567e-12,"). */
const JSON_CHARS_PER_NUMBER = 24;

/**
 * A scenario of shape B, D, K must fit in memory and in a JSON file that dlg can read back
 * (MAX_JSON_BYTES): refused up front, with the sizes it would need.
 */
export function checkScenarioSize(field: string, B: number, D: number, K: number): void {
  const numbers = 2 * D * K + 2 * K + B * K + B * D; // W, b, y, inputs, ∇W, ∇b
  const text = numbers * JSON_CHARS_PER_NUMBER;
  const found = `B=${B}, D=${D}, K=${K} (${numbers.toExponential(2)} numbers)`;
  if (text > MAX_JSON_BYTES) {
    throw new DlgInputError(
      field,
      `a scenario whose JSON file dlg can read back (at most ${formatBytes(MAX_JSON_BYTES)}, about ${Math.floor(MAX_JSON_BYTES / JSON_CHARS_PER_NUMBER).toExponential(2)} numbers)`,
      `${found}: the file would be about ${formatBytes(text)} and need about ${formatBytes(numbers * 8 * 2 + text)} of memory`,
    );
  }
  checkMemory(field, found, { bytes: numbers * 8 * 2 + text, largestArray: Math.max(D * K, B * D), what: 'the scenario and its JSON text' });
}

// ------------------------------------------------------------------ output paths

function kindOf(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'a special file';
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** What exists at `path`, when it is anything but a regular file (or nothing): e.g. "a FIFO (named pipe)". */
function notRegular(path: string): string | null {
  const st = lstatOrNull(path);
  if (!st || st.isFile()) return null;
  if (st.isSymbolicLink()) {
    let to = '';
    try {
      to = ` to ${readlinkSync(path)}`;
    } catch {
      /* unreadable link */
    }
    return `a symbolic link${to}`;
  }
  return kindOf(st);
}

const TEMP_RE = /^\.(.+)\.(\d+)\.(\d+)\.tmp$/;
const liveTemps = new Set<string>();
let tempCounter = 0;

/** A fresh temp path next to `path`, registered for removal on a signal or at exit. */
export function createTempPath(path: string): string {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now() * 1000 + (tempCounter++ % 1000)}.tmp`);
  liveTemps.add(tmp);
  armSignals();
  return tmp;
}

function forgetTemp(tmp: string): void {
  liveTemps.delete(tmp);
  if (liveTemps.size === 0) disarmSignals();
}

/**
 * A streaming output's temp file: stale temps of `path` removed, a fresh registered temp created
 * exclusively next to it (removed again if it cannot be opened).
 */
export function openTempFile(path: string): { tmp: string; fd: number } {
  removeStaleTemps(path);
  const tmp = createTempPath(path);
  try {
    return { tmp, fd: openSync(tmp, 'wx') };
  } catch (err) {
    discardTemp(tmp);
    throw err;
  }
}

/** Removes a temp file (if still there) and forgets it. */
export function discardTemp(tmp: string): void {
  rmSync(tmp, { force: true });
  forgetTemp(tmp);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes temps of `path` left by processes that no longer run (a SIGKILL leaves them). */
export function removeStaleTemps(path: string): void {
  const dir = dirname(path);
  const base = basename(path);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = TEMP_RE.exec(name);
    if (!m || m[1] !== base) continue;
    const pid = Number(m[2]);
    if (pid === process.pid || pidAlive(pid)) continue;
    try {
      if (lstatSync(join(dir, name)).isFile()) rmSync(join(dir, name), { force: true });
    } catch {
      /* gone already */
    }
  }
}

/**
 * Moves a finished temp file onto `path`: refuses (and removes the temp) when something that is
 * not a regular file appeared at `path` meanwhile.
 */
export function commitTemp(tmp: string, path: string, field = 'output'): void {
  const what = notRegular(path);
  if (what) {
    discardTemp(tmp);
    throw new DlgInputError(field, 'a regular file or a new path (special files, links and folders are never replaced)', `${path} (${what})`);
  }
  renameSync(tmp, path);
  forgetTemp(tmp);
}

/**
 * Checks up front that `path` can be written the way the write will do it: nothing but a regular
 * file (or nothing) is there, and a temp file can be created in its folder and renamed.
 */
export function checkOutputPath(field: string, path: string): void {
  if (typeof path !== 'string' || path === '') throw new DlgInputError(field, 'a file path', describe(path));
  const what = notRegular(path);
  if (what) throw new DlgInputError(field, 'a regular file or a new path (special files, links and folders are never replaced)', `${path} (${what})`);
  const dir = dirname(path);
  let st: Stats;
  try {
    st = statSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new DlgInputError(field, 'a path in an existing, writable folder', `${path} (folder ${dir}: ${code === 'ENOENT' ? 'no such folder' : code})`);
  }
  if (!st.isDirectory()) throw new DlgInputError(field, 'a path in an existing, writable folder', `${path} (${dir} is ${kindOf(st)})`);
  const code = probeFolder(path);
  if (code) throw new DlgInputError(field, 'a path in a writable folder (the output goes to a temp file there, then is renamed)', `${path} (${code} in ${dir})`);
}

/** Does what a write of `path` will do: a temp file in its folder, renamed once, then removed. Returns the error code, if any. */
function probeFolder(path: string): string | undefined {
  // Both names are temp names of `path`: if a SIGKILL strikes in between, removeStaleTemps clears them later.
  const probe = createTempPath(path);
  const moved = createTempPath(path);
  try {
    closeSync(openSync(probe, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600));
    renameSync(probe, moved);
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  } finally {
    discardTemp(probe);
    discardTemp(moved);
    removeStaleTemps(path);
  }
}

/**
 * Checks an output folder (created if missing, with its parents): it must be a folder or a new
 * path under a writable one, and a file must be creatable in it.
 */
export function checkOutputDir(field: string, dir: string): void {
  if (typeof dir !== 'string' || dir === '') throw new DlgInputError(field, 'a folder path', describe(dir));
  const st = lstatOrNull(dir);
  const expected = 'a folder, or a new path whose nearest existing parent is a writable folder';
  if (st) {
    if (!st.isDirectory()) throw new DlgInputError(field, expected, `${dir} (${st.isSymbolicLink() ? notRegular(dir) : kindOf(st)})`);
    const code = probeFolder(join(dir, '.dlg-probe'));
    if (code) throw new DlgInputError(field, 'a writable folder (outputs go to a temp file there, then are renamed)', `${dir} (${code})`);
    return;
  }
  // The nearest existing ancestor must be a folder we can create entries in.
  let parent = dirname(resolve(dir));
  for (;;) {
    let pst: Stats | null = null;
    try {
      pst = statSync(parent);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new DlgInputError(field, expected, `${dir} (${parent}: ${(err as NodeJS.ErrnoException).code})`);
    }
    if (pst) {
      if (!pst.isDirectory()) throw new DlgInputError(field, expected, `${dir} (${parent} is ${kindOf(pst)})`);
      const code = probeFolder(join(parent, '.dlg-probe'));
      if (code) throw new DlgInputError(field, expected, `${dir} (cannot create it in ${parent}: ${code})`);
      return;
    }
    const up = dirname(parent);
    if (up === parent) break;
    parent = up;
  }
}

/** Creates an output folder (checked with checkOutputDir first). */
export function ensureDir(dir: string, field = '--out'): void {
  checkOutputDir(field, dir);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new DlgInputError(field, 'a folder that exists or can be created', `${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** The real path of `path`, or of its folder plus its name when it does not exist yet. */
export function realPathOf(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    try {
      return join(realpathSync(dirname(path)), basename(path));
    } catch {
      return resolve(path);
    }
  }
}

export interface PathRole {
  field: string;
  path: string | undefined;
  role: 'input' | 'output';
}

/**
 * Refuses an output path that is an input, or another output, of the same command (real paths
 * compared, so links and `./` spellings are caught).
 */
export function checkDistinctPaths(paths: PathRole[]): void {
  const seen: { field: string; role: string; real: string }[] = [];
  for (const p of paths) {
    if (p.path === undefined || p.path === '-') continue;
    const real = realPathOf(p.path);
    for (const q of seen) {
      if (q.real !== real || (q.role === 'input' && p.role === 'input')) continue;
      const [out, other] = p.role === 'output' ? [p, q] : [q, p];
      throw new DlgInputError(out.field, `a path different from ${other.field} (outputs never overwrite an input or another output)`, `${p.path} (the same file as ${other.field})`);
    }
    seen.push({ field: p.field, role: p.role, real });
  }
}

// ------------------------------------------------------------------ writing

/** Writes data to `path` atomically: a temp file in the same folder, then rename. */
export function writeFileAtomic(path: string, data: string | Uint8Array, field = 'output'): void {
  removeStaleTemps(path);
  const tmp = createTempPath(path);
  try {
    const fd = openSync(tmp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o644);
    try {
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off, Math.min(bytes.length - off, 1 << 30));
    } finally {
      closeSync(fd);
    }
    commitTemp(tmp, path, field);
  } catch (err) {
    discardTemp(tmp);
    throw err;
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value) + '\n');
}

export function writeScenarioFile(path: string, s: Scenario): void {
  writeJsonAtomic(path, scenarioToJson(s));
}

// ------------------------------------------------------------------ signals

let installed = false;
let armed = false;
const SIGNALS = [['SIGINT', 130], ['SIGTERM', 143]] as const;

function removeLiveTemps(): void {
  for (const t of liveTemps) rmSync(t, { force: true });
  liveTemps.clear();
}

const handlers = Object.fromEntries(
  SIGNALS.map(([sig, code]) => [
    sig,
    () => {
      removeLiveTemps();
      process.stderr.write(`\ndlg: interrupted by ${sig}; no partial output left\n`);
      process.exit(code);
    },
  ]),
) as unknown as Record<(typeof SIGNALS)[number][0], () => void>;

/** Handlers are attached only while a temp file lives: otherwise a signal ends the process at once (even in long synchronous work). */
function armSignals(): void {
  if (!installed || armed) return;
  armed = true;
  for (const [sig] of SIGNALS) process.on(sig, handlers[sig]);
}

function disarmSignals(): void {
  if (!armed) return;
  armed = false;
  for (const [sig] of SIGNALS) process.off(sig, handlers[sig]);
}

/**
 * For the CLI: on SIGINT/SIGTERM while an output is being written, remove every live temp file,
 * then exit 130/143 (128 + signal number); with no output under way the signal's default action
 * ends the process (the shell reports 130/143 as well). At any exit the temps are removed too.
 */
export function installSignalCleanup(): void {
  if (installed) return;
  installed = true;
  process.on('exit', removeLiveTemps);
  if (liveTemps.size > 0) armSignals();
}

/**
 * Node runs a signal's handler only when the event loop turns: a SIGINT that arrives during long
 * synchronous work waits until then. Awaiting this before committing an output lets such a signal
 * remove the temps and exit 130/143 first, instead of being dropped once the last temp is committed
 * and the handlers are detached.
 */
export function settleSignals(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Temp files currently alive (for tests). */
export function liveTempFiles(): string[] {
  return [...liveTemps];
}

export { describe };

/** The old name of checkOutputPath. */
export const checkWritable = checkOutputPath;
