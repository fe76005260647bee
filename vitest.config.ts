import { readFileSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

// WGSL is imported as text, as esbuild's `loader: {'.wgsl': 'text'}` does for the bundles.
const wgslText = {
  name: 'wgsl-text',
  enforce: 'pre' as const,
  load(id: string) {
    if (id.endsWith('.wgsl')) return `export default ${JSON.stringify(readFileSync(id, 'utf8'))};`;
    return null;
  },
};

export default defineConfig({
  plugins: [wgslText],
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // One GPU, two cores: GPU-heavy files run one after another.
    fileParallelism: false,
    reporters: ['default'],
  },
});
