# Device call 7 (session 4): issue 16's throughput goal with TF32 for the FP32 channel-attention
# products and the input/output conversions compiled into the graph; then Inductor max-autotune
# at batch 1 with what time is left.
#   run(command="bash tools/gpu/call7.sh", timeout_s=590)   (repo root)
set -u
export OUT=${OUT:-/tmp/out} PYTHONUNBUFFERED=1
S=$OUT/summary.txt
mkdir -p "$OUT"
say() { echo "[${SECONDS}s] $*" | tee -a "$S"; }
python3 -m pip install -q --no-deps --no-build-isolation -e . >/tmp/pip.log 2>&1 || say "pip -e failed"
say "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader) $(git rev-parse --short HEAD 2>/dev/null)"
timeout 330 python3 tools/gpu/fast_gpu.py --out /tmp/f1 --rows eager-fp32,fast-fp16,fast-fp16-tf32 \
  --batch 512 --iters 150 --rounds 3 --profile 2>&1 | grep -v Warning >"$OUT/part1.log"
say "part 1 rc=${PIPESTATUS[0]}"
cp /tmp/f1/fast_gpu.json "$OUT/part1.json" 2>/dev/null
T=$((565 - SECONDS))
say "part 2 budget ${T}s"
if [ "$T" -gt 90 ]; then
  timeout "$T" python3 tools/gpu/fast_gpu.py --out /tmp/f2 --rows fast-fp16-tf32 --batch 1 \
    --iters 150 --rounds 3 --profile --inductor max_autotune=True 2>&1 | grep -v Warning >"$OUT/part2.log"
  say "part 2 rc=${PIPESTATUS[0]}"
  cp /tmp/f2/fast_gpu.json "$OUT/part2.json" 2>/dev/null
fi
say done
