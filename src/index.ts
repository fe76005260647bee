/**
 * Browser-safe library entry: everything here runs on navigator.gpu or plain JS.
 * This is the documented surface (docs/library.md); internals (kernel caps, shader entry points,
 * optimizer constants) stay in their modules, where tests import them directly.
 * One line per module: to publish a new module's API, add its line to the right group.
 */

// Errors
export { DlgInputError, DlgRuntimeError } from './core/errors.js';

// Devices
export { type DlgDevice, type RequestDeviceOptions, requestBrowserDevice, requestDeviceFrom } from './gpu/device.js';

// The model and its float64 reference
export { type Gradient, type Layer, type MatchLoss, type Reduction, bceLoss, forward, matchCosine, matchL2, matchLoss, sigmoid, victimGradient } from './core/model.js';

// Scenarios and data sets
export { SCENARIO_FORMAT, type Scenario, type ScenarioJson, makeScenario, parseFakeBatches, parseScenario, scenarioToJson } from './core/scenario.js';
export { DATASET_INFO, DATASET_NAMES, type DatasetName, type DatasetRows, type SimulateOptions, defaultScenario, parseDatasetCsv, simulateScenario } from './core/datasets.js';
export { Rng } from './core/rng.js';

// Attack
export { ATTACK_DEFAULTS, DEFAULT_LR, LM_DEFAULTS, type AttackInit, type AttackLabels, type AttackMethod, type AttackOptimizer, type AttackOptions, type AttackPlan, type AttackProgress, type AttackResult, type EngineChoice, type LossQuantiles, type ResolvedAttackOptions, type RestartOutcome, type ValidatedAttackOptions, attack, planAttack, validateAttackOptions } from './attack/attack.js';
export { type SubspaceReduction, type ReduceMode, type Regime, type RegimeInfo, analyseScenario, reduceScenario } from './analysis/reduce.js';
export { type LmState, LM_LAMBDA0, lmRefine, lmStep, normalMatrix } from './analysis/lm.js';
export { type LmTuning, fitsLm } from './attack/engine-lm.js';
export { type AttackKernel, type EngineTuning, createAttackEngine } from './attack/engine.js';
export { type KernelChoice, type KernelContext, type KernelFamily, type KernelSpec, type Misfit, chooseKernel, kernelNames } from './gpu/kernels.js';
export { type EngineHandle, type EngineOptions, type EngineStatus, type Optimizer, type RestartStatus, OPTIMIZERS, createCpuEngine } from './attack/engine-cpu.js';
export { type ReadbackSchedule, type RunCounts, type RunLoop, type RunLoopOptions, type RunSnapshot, type RunStop, runLoop, summariseStatus, validateSchedule } from './attack/run-loop.js';
export { type ObjectiveHandle, type ObjectiveOptions, type ObjectiveRegime, type VictimGradientHandle, createObjective, createVictimGradient } from './objective/objective.js';
export { type AnalyticRecovery, analyticRecover } from './analysis/analytic.js';
export { type ColumnInference, type LabelInference, inferLabels } from './analysis/labels.js';
export { SUCCESS_REL_ERROR, type Assignment, type MatchRowsOptions, type ReconstructionMetrics, matchRows, reconstructionMetrics } from './analysis/matching.js';

// Defences and predicted leakage
export { type Defence, type DefenceContext, applyDefence, applyDefences, defendScenario, dpsgdGradient, gradientRms, parseDefenceList, parseDefenceSpec, parseDefenceSpecs, perExampleGradients, pruneKeepCount, roundFp16 } from './core/defence.js';
export { type NoisePrediction, predictNoiseLeakage } from './analysis/leakage.js';

// Diagnosis
export { type Diagnosis, diagnose, flattestDirections, solutionDimension } from './analysis/diagnose.js';

// Loss surfaces
export { type CoordinatePlaneOptions, type FlattestPlaneOptions, type Plane, type PlaneJson, type PlaneMarker, type RandomPlaneOptions, type ThreePointOptions, coordinatePlane, explicitPlane, flattestPlane, planeToJson, projectOntoPlane, randomPlane, threePointPlane, validatePlane } from './surface/plane.js';
export { MAX_RESOLUTION, type SurfaceHandle, type SurfaceKernel, type SurfaceOptions, type SurfacePath, createSurface, surface, surfaceCpu } from './surface/surface.js';
export { type Census, type CensusMinimum, type CensusOptions, basinCensus, formatCensus } from './surface/census.js';
