#!/usr/bin/env bash
# Runs the benches on a lent GPU machine that has no Node toolchain: what bench/gpu-pack.mjs put in
# .devpack, plus the Vulkan loader debs in .gl (see the device tool's README). JSON lines go to
# $OUT/bench.jsonl, stderr to $OUT/stderr.log, the study's folder to $OUT/study.tgz.
#   bench/gpu-run.sh [steps...]     steps: probe objective attack mid surface study quality (default: all but mid, quality)
# Each step has its own time limit, so that a slow one cannot eat the lease; STUDY_S sets the study's,
# QUICK=1 skips the larger-P attack variants.
set -u
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
log=$OUT/bench.jsonl
err=$OUT/stderr.log
steps=${*:-probe objective attack surface study}
t_start=$(date +%s)
note() { echo "[$(( $(date +%s) - t_start ))s] $*" | tee -a "$err"; }

for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
mkdir -p /tmp/node
xz -dc .devpack/node.xz >/tmp/node/node && chmod +x /tmp/node/node
dawn=.devpack/node_modules/webgpu/dist/linux-x64/dawn.node
[ -f "$dawn" ] || xz -dk "$dawn.xz"
export PATH=/tmp/node:$PATH XDG_RUNTIME_DIR=/tmp
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
note "node $(node --version); $(nvidia-smi -L 2>&1 | head -1); icd ${VK_DRIVER_FILES:-default}"

run() { # run <seconds> <bench> [args...]
  local s=$1 b=$2
  shift 2
  note "start $b $*"
  timeout -k 5 "$s" node ".devpack/bench/$b.mjs" "$@" >>"$log" 2>>"$err"
  note "end $b rc=$?"
}

for step in $steps; do
  case $step in
  probe)
    node --input-type=module -e "
      import { create, globals } from './.devpack/node_modules/webgpu/index.js';
      Object.assign(globalThis, globals);
      const gpu = create([]);
      for (const pp of ['high-performance', 'low-power']) {
        const a = await gpu.requestAdapter({ powerPreference: pp });
        console.log(pp, JSON.stringify(a && { ...a.info, vendor: a.info.vendor, architecture: a.info.architecture, device: a.info.device, description: a.info.description,
          timestamp: a.features.has('timestamp-query'), maxBuffer: a.limits.maxBufferSize, maxBinding: a.limits.maxStorageBufferBindingSize }));
      }
      process.exit(0);" 2>&1 | tee -a "$err"
    ;;
  objective) run 45 objective --case '2,1,1,65536,1e8;2,1,1,1048576;8,784,10,256,6e4;8,784,10,4096' ;;
  attack)
    run 60 attack
    [ -n "${QUICK:-}" ] || run 25 attack --only tiny --tiny-p 1048576 --iters 1024
    [ -n "${QUICK:-}" ] || run 25 attack --only large --large-p 4096 --iters 32
    ;;
  mid) run "${MID_S:-60}" attack-mid --only 8,64,10 --iters 64 --samples 3 ;;
  surface)
    run 45 surface --skip-e2e
    run 30 surface --skip-e2e --case '2,1,1,16384'
    ;;
  study)
    mkdir -p /tmp/study/webgpu
    # a partial sweep from an earlier lease continues (--resume skips its configurations)
    [ -f .devpack/study-prev/results.jsonl ] && cp .devpack/study-prev/results.jsonl /tmp/study/webgpu/
    run "${STUDY_S:-200}" study --skip-cpu --resume --out /tmp/study
    tar czf "$OUT/study.tgz" -C /tmp study
    ;;
  quality) run "${QUALITY_S:-120}" attack-quality --scenarios 100 ;;
  *) note "unknown step $step" ;;
  esac
done
note "done"
