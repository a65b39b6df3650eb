# Device call 5 (issue 16, session 3; rows of commit dfca8bc, removed after it): does attention between a feature map and 2..4 tokens,
# written as broadcast products + sums (`few_token_attention`), and Inductor's
# max-autotune bring the fast path to the goals (b1 <= 0.9 ms, >= 10,000 img/s at b128)?
#   run(command="bash tools/gpu/call5.sh", timeout_s=590)     (from the repo root)
# Part 1 A/B in one process: eager-fp32, fast-fp16 (shipped), fast-fp16-few. Part 2, with
# what time is left: fast-fp16-few vs fast-fp16-few-at (Inductor's caches hold part 1's graphs).
set -u
export OUT=${OUT:-/tmp/out} PYTHONUNBUFFERED=1
mkdir -p "$OUT"
python3 -m pip install -q --no-deps --no-build-isolation -e . >/tmp/pip.log 2>&1 || echo "pip -e failed"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/summary.txt"
timeout 330 python3 tools/gpu/fast_gpu.py --out /tmp/f1 --rows eager-fp32,fast-fp16,fast-fp16-few \
  --iters 150 --rounds 3 2>&1 | tee "$OUT/part1.log" | grep -v Warning
cp /tmp/f1/fast_gpu.json "$OUT/part1.json" 2>/dev/null
T=$((560 - SECONDS))
echo "part 2 budget ${T}s" | tee -a "$OUT/summary.txt"
if [ "$T" -gt 90 ]; then
  timeout "$T" python3 tools/gpu/fast_gpu.py --out /tmp/f2 --rows fast-fp16-few,fast-fp16-few-at \
    --iters 150 --rounds 3 2>&1 | tee "$OUT/part2.log" | grep -v Warning
  cp /tmp/f2/fast_gpu.json "$OUT/part2.json" 2>/dev/null
fi
echo "done at ${SECONDS}s" | tee -a "$OUT/summary.txt"
