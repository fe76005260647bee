/** Node library entry: the browser-safe library plus dawn.node devices and file I/O. */
export * from './index.js';
export * from './device-node.js';
export * from './io.js';
