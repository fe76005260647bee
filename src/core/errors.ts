/**
 * Bad input: names the field, the expected shape or range, and what was found.
 * The CLI maps it to exit code 2.
 */
export class DlgInputError extends Error {
  override name = 'DlgInputError';
  constructor(
    readonly field: string,
    readonly expected: string,
    readonly found: string,
  ) {
    super(`${field}: expected ${expected}, found ${found}`);
  }
}

/** A failure while running (no adapter, device lost, validation error). CLI exit code 1. */
export class DlgRuntimeError extends Error {
  override name = 'DlgRuntimeError';
}

/** Short, safe description of any value for error messages. */
export function describe(v: unknown): string {
  if (v === undefined) return 'nothing (missing)';
  if (v === null) return 'null';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === 'object') return 'an object';
  return typeof v;
}

export function requirePositiveInt(field: string, v: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
    throw new DlgInputError(field, `an integer in [1, ${max}]`, describe(v));
  }
  return v;
}

export function requireFiniteNumber(field: string, v: unknown, lo = -Infinity, hi = Infinity): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) {
    const range = lo === -Infinity && hi === Infinity ? 'a finite number' : `a finite number in [${lo}, ${hi}]`;
    throw new DlgInputError(field, range, describe(v));
  }
  return v;
}

export function requireOneOf<T extends string>(field: string, v: unknown, options: readonly T[]): T {
  if (typeof v !== 'string' || !(options as readonly string[]).includes(v)) {
    throw new DlgInputError(field, `one of ${options.map((o) => `'${o}'`).join(', ')}`, describe(v));
  }
  return v as T;
}

/** An array (any ArrayLike) of exactly n finite numbers; returns it unchanged. The one array validator. */
export function requireFiniteArray(field: string, v: unknown, n: number): ArrayLike<number> {
  if (v === null || typeof v !== 'object' || typeof (v as ArrayLike<number>).length !== 'number') {
    throw new DlgInputError(field, `an array of ${n} finite numbers`, describe(v));
  }
  const a = v as ArrayLike<number>;
  if (a.length !== n) throw new DlgInputError(field, `length ${n}`, `length ${a.length}`);
  for (let i = 0; i < n; i++) {
    const x = a[i];
    if (typeof x !== 'number' || !Number.isFinite(x)) throw new DlgInputError(`${field}[${i}]`, 'a finite number', describe(x));
  }
  return a;
}
