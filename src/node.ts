/** Node library entry: the browser-safe library plus dawn.node devices, files, studies and pictures. */
export * from './index.js';
export { type NodeDeviceOptions, requestNodeDevice } from './node/device-node.js';
export { readJsonFile, readScenarioFile, writeJsonAtomic, writeScenarioFile } from './node/io.js';
export { loadDataset } from './node/data-node.js';
export { STUDY_FORMAT, DEFAULT_STUDY_CONFIG, type ConfigResult, type ScenarioResult, type StudyConfig, type StudyHooks, type StudyProgress, type StudyResult, type StudyRunOptions, readStudyResults, study, studyResultsCsv, validateStudyConfig, writeStudyOutputs } from './node/study.js';
export { type DigitsPngOptions, renderDigitsPng, writeDigitsPng } from './node/digits-png.js';
export { readNpy, writeNpy } from './node/npy.js';
export { type Colormap, type RenderInfo, type RenderOptions, writeSurfacePng } from './node/render.js';
