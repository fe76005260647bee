import { attack } from '../src/attack.js';
import { loadDataset } from '../src/data-node.js';
import { simulateScenario } from '../src/datasets.js';
const cfgs: [string, (s:number)=>any][] = [];
for (const [B,D,K] of [[2,1,1],[4,1,4],[2,13,3],[4,16,4],[8,16,10],[8,64,10],[8,784,10],[8,3072,10],[16,256,20]]) cfgs.push([`g(${B},${D},${K})`, (seed)=>simulateScenario({dataset:'gaussian',B,D,K,seed})]);
const dg = loadDataset('digits'); for (let B=1;B<=10;B++) cfgs.push([`digits${B}`,(seed)=>simulateScenario({dataset:'digits',B,seed,data:dg})]);
const ir = loadDataset('iris'); for (let B=1;B<=3;B++) cfgs.push([`iris${B}`,(seed)=>simulateScenario({dataset:'iris',B,seed,data:ir})]);
for (const [name, make] of cfgs) {
  const fails: string[] = []; const its: number[] = []; let t = 0;
  for (let seed = 0; seed < 20; seed++) {
    const r = await attack(null, make(seed), { seed });
    t += r.wallTimeMs;
    its.push(r.bestRestart?.iterations ?? 0);
    const ok = (r.metrics!.relativeError <= 1e-6) || (r.polish?.ambiguous && r.polish.truthAmongExact);
    if (!ok) fails.push(`${seed}:${r.metrics!.relativeError.toExponential(1)}${r.polish?.ambiguous?'amb':''}/${r.restarts.successFraction?.toFixed(2)}`);
  }
  its.sort((a,b)=>a-b);
  console.log(name, 'fails', fails.length, fails.join(' '), 'median its', its[10], 'mean ms', (t/20).toFixed(0));
}
