import { attack } from '../src/attack.js';
import { simulateScenario } from '../src/datasets.js';
for (const opts of [{}, {stopAfter: 16, readbackEvery: 5}, {stopAfter: 8, readbackEvery: 2}, {restarts: 16}, {restarts: 16, stopAfter: 4, readbackEvery: 2}]) {
  const ws: number[] = []; let fails = 0; const runs: number[] = [];
  for (let seed = 0; seed < 10; seed++) {
    const s = simulateScenario({dataset:'gaussian',B:8,D:784,K:10,seed});
    const r = await attack(null, s, { seed, ...opts });
    ws.push(r.wallTimeMs); runs.push(r.timing.runMs);
    if (!(r.metrics!.relativeError <= 1e-6)) fails++;
  }
  ws.sort((a,b)=>a-b); runs.sort((a,b)=>a-b);
  console.log(JSON.stringify(opts), 'fails', fails, 'median ms', ws[5].toFixed(0), 'run', runs[5].toFixed(0));
}
