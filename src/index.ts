/** Browser-safe library entry: everything here runs on navigator.gpu or plain JS. */
export * from './errors.js';
export * from './model.js';
export * from './scenario.js';
export * from './rng.js';
export * from './device.js';
export * from './gpu.js';
