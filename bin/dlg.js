#!/usr/bin/env node
// The `dlg` command. It runs the CLI as a child process whose stderr goes through a filter
// that drops Dawn's two harmless adapter-limit notices (see scripts/quiet-dawn.mjs).
// DLG_RAW_STDERR=1 runs the CLI in this process instead, with Dawn's output untouched.
import { fileURLToPath } from 'node:url';
import { runQuiet, ttyStderr } from '../scripts/quiet-dawn.mjs';

if (process.env.DLG_QUIET_CHILD === '1' || process.env.DLG_RAW_STDERR === '1') {
  ttyStderr();
  await import('../dist/node/cli.js');
} else {
  process.exitCode = await runQuiet([fileURLToPath(import.meta.url), ...process.argv.slice(2)]);
}
