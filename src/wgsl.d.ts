// WGSL sources are imported as text (esbuild loader 'text', vitest transform).
declare module '*.wgsl' {
  const source: string;
  export default source;
}
