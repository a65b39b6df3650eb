# Device call 4 (issue 16, phase 2; the session's only call): qtseg-export of aoti-cuda-fp16
# and aoti-cuda through the CLI, qtseg-bench GPU rows (torch variants + both packages, plain
# and CUDA-graph replay), C++ qtseg_infer vs Python logits, pytest -m gpu.
#   cd .carry/gpu && DEADLINE=355 bash tools/gpu/call4.sh   (run's timeout_s 375)
# Steps that need only CPUs (C++ build, Inductor cache warm-up of the fast-fp16 row, pytest's
# tiny compiles) overlap the exports; nothing is timed while they run. Every step is bounded
# by `timeout` and by DEADLINE (seconds since start); results land in $OUT as they come.
# LOCAL=1 (a machine without a GPU, e.g. to catch typos): no device setup, an existing C++ build
# in $CPPB is used instead of building one; the GPU steps then refuse or skip with their reasons.
if [ "${LOCAL:-0}" = 1 ]; then export OUT=${OUT:-/tmp/call4-local}; mkdir -p /tmp/logs; else
  source tools/gpu/setup_device.sh; fi
set -o pipefail
CPPB=${CPPB:-/tmp/cppb}
DEADLINE=${DEADLINE:-355}
L=/tmp/logs; S=$OUT/summary.txt; E=/tmp/exports; R=$OUT/bench
mkdir -p "$R" "$E"
say() { echo "[${SECONDS}s] $*" | tee -a "$S"; tar czf "$OUT/logs.tgz" -C /tmp logs 2>/dev/null; }
left() { echo $((DEADLINE - SECONDS)); }
CKPT=$(python3 -c 'import qtseg; print(qtseg.DEFAULT_CHECKPOINT)')
say "start: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null);" \
  "$(python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)')"

# -- CPU-only work in the background ------------------------------------------------------
TD=$(python3 -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')/Torch
CPP=
if [ "${LOCAL:-0}" = 1 ]; then echo "cpp build: skipped (LOCAL=1, using $CPPB)" >$L/cpp_build.log; else
  ( cmake -S . -B $CPPB -G Ninja -DCMAKE_BUILD_TYPE=Release -DQTSEG_WITH_LIBTORCH=ON \
      -DTorch_DIR="$TD" -DQTSEG_WITH_OPENVINO=OFF -DQTSEG_WITH_TENSORRT=OFF -DQTSEG_WITH_ORT=OFF \
      -DQTSEG_BUILD_TESTS=OFF && nice cmake --build $CPPB -j4 --target qtseg_infer_cli
    echo "cpp build rc=$?" ) </dev/null >$L/cpp_build.log 2>&1 &
  CPP=$!
fi
# the bench's fast-fp16 row compiles b1 and b128; do it once now so the row hits Inductor's caches
timeout 200 nice python3 -c "
import time, numpy as np, qtseg
from qtseg.bench.torch_variants import open_variant
t = time.perf_counter()
be = open_variant(qtseg.DEFAULT_CHECKPOINT, variant='fast-fp16', device='cuda')
for b in (1, 128):
    be.infer(np.zeros((b, 3, 512, 512), np.float32)); print('warm b', b, round(time.perf_counter() - t, 1), 's')
" </dev/null >$L/warm_fast.log 2>&1 &
WARM=$!
timeout 200 nice -n 19 python3 -m pytest -q -p no:cacheprovider -m gpu -rs \
  tests/backends/test_aoti_backend.py tests/export/test_aoti.py </dev/null >$L/pytest_gpu.log 2>&1 &
PT=$!

# -- (a) exports through the CLI, both targets at once ----------------------------------------
# (fp16 is the one that matters: it gets the longer limit; fp32 must not hold up the bench)
for t in aoti-cuda-fp16:240 aoti-cuda:200; do
  timeout ${t#*:} qtseg-export --target ${t%:*} --dynamic-batch 128 --out $E </dev/null \
    >$L/export_${t%:*}.log 2>&1 &
  eval "EXP_$(echo ${t%:*} | tr - _)=$!"
done
wait "$EXP_aoti_cuda_fp16"; say "export aoti-cuda-fp16 rc=$? | $(grep -E 'PASS|FAIL|error|compile \+ package' -A1 $L/export_aoti-cuda-fp16.log | grep -E 'PASS|FAIL|error|done' | tr '\n' ';' | cut -c1-400)"
wait "$EXP_aoti_cuda"; say "export aoti-cuda rc=$? | $(grep -E 'PASS|FAIL|error|compile \+ package' -A1 $L/export_aoti-cuda.log | grep -E 'PASS|FAIL|error|done' | tr '\n' ';' | cut -c1-400)"
for d in "$E"/*; do [ -f "$d/manifest.json" ] && cp "$d/manifest.json" "$L/manifest_$(basename "$d").json"; done
wait "$WARM"; say "fast-fp16 warm-up rc=$? | $(grep '^warm' $L/warm_fast.log | tr '\n' ';')"

# -- (b) qtseg-bench GPU rows (nothing else runs on the GPU now) ----------------------------------
if kill -0 "$PT" 2>/dev/null; then kill "$PT"; say "pytest -m gpu stopped: still running when the bench began"; fi
wait "$PT"; say "pytest -m gpu rc=$?: $(grep -E 'passed|failed|error' $L/pytest_gpu.log | tail -1)"
ARTS=$(ls -d "$E"/qtseg-v2_aoti-cuda-fp16 2>/dev/null)  # fp16 first; fp32 when time allows
if [ "$(left)" -ge 175 ]; then ARTS="$ARTS $(ls -d "$E"/qtseg-v2_aoti-cuda 2>/dev/null)"; fi
# no package: the PyTorch rows of the checkpoint alone (its artifacts' group has them otherwise)
[ -n "${ARTS// /}" ] || ARTS=$CKPT
T=$(( $(left) - 35 ))
say "bench: $ARTS, timeout ${T}s"
if [ "$T" -gt 60 ]; then
  timeout $T qtseg-bench $ARTS --device cuda --variants eager-fp32,eager-fp16,fast-fp16 \
    --cuda-graph --batch 1,128 --warmup 10 --iters 50 --e2e-iters 30 --row-timeout 120 --out "$R" \
    </dev/null >$L/bench.log 2>&1
  say "bench rc=$? | $(grep -E '^\[[0-9]+/[0-9]+\] .*: ' $L/bench.log | sed 's/^.*\] //' | cut -c1-160 | tr '\n' ';')"
fi

# -- (c) C++ qtseg_infer on the fp16 package vs Python (host clock, copies included) ----------
[ -z "${CPP:-}" ] || wait "$CPP"; say "$(tail -1 $L/cpp_build.log)"
A=$E/qtseg-v2_aoti-cuda-fp16
IMG=$(ls qtseg/assets/samples/images/* | head -1)
if [ -x $CPPB/cpp/qtseg_infer ] && [ -d "$A" ] && [ "$(left)" -gt 40 ]; then
  B="$CPPB/cpp/qtseg_infer --artifact $A --input $IMG --device cuda --bench 100 --warmup 10"
  timeout 20 $B --dump-input /tmp/in.f32 --dump-logits /tmp/cpp_plain.f32 >$L/cpp_plain.log 2>&1
  say "cpp plain rc=$? | $(grep -E 'backend:|infer|end-to-end|error' $L/cpp_plain.log | tr '\n' ';' | cut -c1-500)"
  env QTSEG_LIBTORCH_CUDA_GRAPH=1 timeout 20 $B --dump-logits /tmp/cpp_graph.f32 >$L/cpp_graph.log 2>&1
  say "cpp graph rc=$? | $(grep -E 'backend:|infer|end-to-end|error' $L/cpp_graph.log | tr '\n' ';' | cut -c1-500)"
  timeout 30 python3 tools/gpu/cpp_parity.py "$A" /tmp/in.f32 /tmp/cpp_plain.f32 /tmp/cpp_graph.f32 \
    2>&1 | tail -3 | tee -a "$S"
fi

say "done"
