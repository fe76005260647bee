import type { Command } from 'commander';
// Placeholder until `dlg simulate` lands (issue 2).
export function registerSimulate(_program: Command): void {}
