/** Node library entry: the browser-safe library plus dawn.node devices and file I/O. */
export * from './index.js';
export * from './device-node.js';
export * from './io.js';
export * from './data-node.js';
export * from './study.js';
export * from './plots.js';
export * from './digits-png.js';
export * from './npy.js';
export * from './render.js';
