/** Node library entry: the browser-safe library plus dawn.node devices, files, studies and pictures. */
export * from './index.js';
export { type NodeDeviceOptions, requestNodeDevice } from './device-node.js';
export { readJsonFile, readScenarioFile, writeJsonAtomic, writeScenarioFile } from './io.js';
export { loadDataset } from './data-node.js';
export { STUDY_FORMAT, DEFAULT_STUDY_CONFIG, type ConfigResult, type ScenarioResult, type StudyConfig, type StudyHooks, type StudyProgress, type StudyResult, type StudyRunOptions, readStudyResults, study, studyResultsCsv, validateStudyConfig, writeStudyOutputs } from './study.js';
export { type DigitsPngOptions, renderDigitsPng, writeDigitsPng } from './digits-png.js';
export { readNpy, writeNpy } from './npy.js';
export { type Colormap, type RenderInfo, type RenderOptions, writeSurfacePng } from './render.js';
