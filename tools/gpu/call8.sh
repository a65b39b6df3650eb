# Device call 8 (session 4): issue 16 through the user-facing tools with FAST_GPU's TF32 affinity
# products: qtseg-export of aoti-cuda-fp16 (dynamic batch up to 512), then one qtseg-bench run
# (eager FP32, fast-fp16, the package plain and with CUDA-graph replay) at batch 1 and 512.
#   run(command="bash tools/gpu/call8.sh", timeout_s=560)   (repo root)
# The fast-fp16 row's Inductor graphs are compiled while the package exports (CPU work; nothing
# is timed then), so the bench row finds them in the cache.
set -u
export OUT=${OUT:-/tmp/out} PYTHONUNBUFFERED=1
S=$OUT/summary.txt; E=/tmp/exports
mkdir -p "$OUT" "$E"
say() { echo "[${SECONDS}s] $*" | tee -a "$S"; }
python3 -m pip install -q --no-deps --no-build-isolation -e . >/tmp/pip.log 2>&1 || say "pip -e failed"
say "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader);" \
  "$(python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)')"
timeout 240 nice python3 -c "
import time, numpy as np, qtseg
from qtseg.bench.torch_variants import open_variant
t = time.perf_counter()
be = open_variant(qtseg.DEFAULT_CHECKPOINT, variant='fast-fp16', device='cuda')
for b in (1, 512):
    be.infer(np.zeros((b, 3, 512, 512), np.float32)); print('warm b', b, round(time.perf_counter() - t, 1), 's')
" >"$OUT/warm.log" 2>&1 &
WARM=$!
timeout 260 qtseg-export --target aoti-cuda-fp16 --dynamic-batch 512 --out $E >"$OUT/export.log" 2>&1
say "export rc=$? | $(grep -E 'PASS|FAIL|rror' "$OUT/export.log" | tr '\n' ';' | cut -c1-400)"
wait $WARM; say "warm rc=$? $(grep '^warm' "$OUT/warm.log" | tr '\n' ';')"
ARTS=$(ls -d $E/*_aoti-cuda-fp16 2>/dev/null)
timeout $((540 - SECONDS)) qtseg-bench $ARTS --device cuda --variants eager-fp32,fast-fp16 --cuda-graph \
  --batch 1,512 --warmup 10 --iters 50 --e2e-iters 30 --row-timeout 200 --no-plots --out /tmp/bench \
  >"$OUT/bench.log" 2>&1
say "bench rc=$?"
cp /tmp/bench/report.md /tmp/bench/report.json "$OUT/" 2>/dev/null
say done
