import type { Command } from 'commander';
// Placeholder until `dlg eval` lands (issue 2).
export function registerEval(_program: Command): void {}
