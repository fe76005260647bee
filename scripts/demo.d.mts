// Types for scripts/demo.mjs (imported by the browser tests and bench).
import type { Server } from 'node:http';
import type { Metafile } from 'esbuild';

export declare const WEB_OUT: string;
export declare function buildDemo(opts?: { outdir?: string; minify?: boolean }): Promise<Metafile>;
export declare function startDemoServer(opts?: { root?: string; dataDir?: string; port?: number; host?: string }): Promise<{
  server: Server;
  url: string;
  close(): Promise<void>;
}>;
