/**
 * NumPy .npy (format 1.0) for float32 fields: a streaming writer (rows appended as tiles
 * arrive, temp file renamed at the end so no partial file is left) and a reader. Node only.
 * Load in Python with `np.load("field.npy")` → shape (res, res), float32, C order.
 */
import { closeSync, readFileSync, writeSync } from 'node:fs';
import { DlgInputError } from '../core/errors.js';
import { commitTemp, discardTemp, openTempFile } from './io.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** The header for a little-endian float32 C-order array; total length a multiple of 64. */
export function npyHeader(shape: readonly number[]): Uint8Array {
  const shapeStr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  const pre = 10; // magic 6 + version 2 + header length 2
  const total = Math.ceil((pre + dict.length + 1) / 64) * 64;
  dict = dict.padEnd(total - pre - 1, ' ') + '\n';
  const out = new Uint8Array(total);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  out[8] = dict.length & 0xff;
  out[9] = dict.length >> 8;
  for (let i = 0; i < dict.length; i++) out[pre + i] = dict.charCodeAt(i);
  return out;
}

export interface NpyHeader {
  descr: string;
  fortranOrder: boolean;
  shape: number[];
  dataOffset: number;
}

/** Parses a .npy header (versions 1.0–3.0). */
export function parseNpyHeader(buf: Uint8Array): NpyHeader {
  for (let i = 0; i < MAGIC.length; i++) if (buf[i] !== MAGIC[i]) throw new DlgInputError('npy', 'a file starting with \\x93NUMPY', 'another magic');
  const major = buf[6];
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const len = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const text = new TextDecoder('latin1').decode(buf.subarray(start, start + len));
  const descr = /'descr':\s*'([^']*)'/.exec(text)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(text)?.[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fortran === undefined || shape === undefined) throw new DlgInputError('npy', "a header dict with 'descr', 'fortran_order' and 'shape'", JSON.stringify(text));
  return {
    descr,
    fortranOrder: fortran === 'True',
    shape: shape
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0)
      .map(Number),
    dataOffset: start + len,
  };
}

/** Streams float32 rows into `path` (via a temp file, renamed on close()). */
export class NpyWriter {
  private fd: number;
  private tmp: string;
  private written = 0;
  private readonly expected: number;

  constructor(
    private readonly path: string,
    readonly shape: readonly number[],
  ) {
    if (new Uint8Array(new Float32Array([1]).buffer)[3] !== 0x3f) throw new Error('NpyWriter assumes a little-endian host');
    this.expected = shape.reduce((a, b) => a * b, 1);
    ({ tmp: this.tmp, fd: this.fd } = openTempFile(path));
    try {
      writeSync(this.fd, npyHeader(shape));
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  /** Appends values in C order. */
  write(values: Float32Array): void {
    if (this.written + values.length > this.expected) {
      this.abort();
      throw new DlgInputError('npy', `${this.expected} values in all`, `${this.written + values.length}`);
    }
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    let off = 0;
    while (off < bytes.length) off += writeSync(this.fd, bytes, off, Math.min(bytes.length - off, 1 << 30));
    this.written += values.length;
  }

  close(): void {
    if (this.written !== this.expected) {
      this.abort();
      throw new DlgInputError('npy', `${this.expected} values`, `${this.written} written`);
    }
    closeSync(this.fd);
    commitTemp(this.tmp, this.path, '--npy');
  }

  /** Closes and deletes the temp file. */
  abort(): void {
    try {
      closeSync(this.fd);
    } catch {
      /* already closed */
    }
    discardTemp(this.tmp);
  }
}

export function writeNpy(path: string, data: Float32Array, shape: readonly number[]): void {
  const w = new NpyWriter(path, shape);
  w.write(data);
  w.close();
}

export function readNpy(path: string): { shape: number[]; data: Float32Array } {
  const buf = readFileSync(path);
  const h = parseNpyHeader(buf);
  if (h.descr !== '<f4' || h.fortranOrder) throw new DlgInputError('npy', "'<f4' in C order", `'${h.descr}'${h.fortranOrder ? ', Fortran order' : ''}`);
  const n = h.shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  new Uint8Array(data.buffer).set(buf.subarray(h.dataOffset, h.dataOffset + n * 4));
  return { shape: h.shape, data };
}
