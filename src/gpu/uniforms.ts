/**
 * Uniform blocks laid out from the WGSL structs themselves (webgpu-utils): the host sets fields by name,
 * the offsets come from the shader source the registry compiles, so a struct and its packing cannot drift.
 */
import './float16.js';
import { type ShaderDataDefinitions, type StructuredView, makeShaderDataDefinitions, makeStructuredView } from 'webgpu-utils';

export type { StructuredView };
import { DlgRuntimeError } from '../core/errors.js';
import { type KernelSpec, kernelSource } from './kernels.js';

const definitions = new WeakMap<KernelSpec, ShaderDataDefinitions>();

/** A fresh view of the uniform variable `name` of a kernel row: `.set({...})`, then write `.arrayBuffer`. */
export function uniformView(spec: KernelSpec, name: string): StructuredView {
  let defs = definitions.get(spec);
  if (!defs) {
    defs = makeShaderDataDefinitions(kernelSource(spec));
    definitions.set(spec, defs);
  }
  const v = defs.uniforms[name];
  if (!v) throw new DlgRuntimeError(`${spec.family}/${spec.name}: no uniform '${name}' in its WGSL`);
  return makeStructuredView(v);
}
