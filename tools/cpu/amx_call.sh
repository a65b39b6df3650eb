# Issue 15 on an AMX Xeon: one device call on the lent GPU host's CPU (the GPU is not used).
#
#   run(command="bash tools/cpu/amx_call.sh", carry=[".carry/amx"], timeout_s=560)
#
# .carry/amx holds what the host lacks (it has torch, onnx, onnxruntime, no openvino):
#   ov312.tar.xz      the openvino 2026.4.1 cp312 wheel's files minus the GPU/NPU plugins and
#                     the TF/Paddle/PyTorch/JAX/GGUF frontends (64 MiB carry limit)
#   *.whl             onnxslim, colorama, openvino-telemetry
#   int8.tar.xz       qtseg-v2_onnx-int8 and qtseg-v2_openvino-int8, exported here with the
#                     defaults (`qtseg-export --target onnx-int8,openvino-int8 --calib
#                     ../shared/data/kvasir-seg`): the calibration data does not travel
# The FP32/bf16 artifacts are exported there (same checkpoint, same gates). Measurements are
# pinned with taskset to two logical CPUs on two different physical cores (recorded).
set -u
export OUT=${OUT:-/tmp/out} PYTHONUNBUFFERED=1
C=.carry/amx; E=/tmp/amx_exports; S=$OUT/summary.txt
mkdir -p "$OUT" /tmp/site "$E"
say() { echo "[${SECONDS}s] $*" | tee -a "$S"; }
tar xJf $C/ov312.tar.xz -C /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $C/*.whl
export PYTHONPATH=/tmp/site
python3 -m pip install -q --no-deps --no-build-isolation -e . >/tmp/pip.log 2>&1 || say "pip -e failed"
lscpu >"$OUT/lscpu.txt"; lscpu -p=CPU,CORE,SOCKET >>"$OUT/lscpu.txt"
# two logical CPUs of two different cores
CPUS=$(lscpu -p=CPU,CORE | grep -v '^#' | sort -t, -k2,2n -u | head -2 | cut -d, -f1 | paste -sd,)
say "cpus $CPUS; $(grep -m1 'model name' /proc/cpuinfo); amx: $(grep -o -m1 'amx_int8' /proc/cpuinfo)"
say "$(python3 -c 'import openvino as ov, torch, onnxruntime as o; print("ov", ov.__version__, "torch", torch.__version__, "ort", o.__version__, ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))')"
tar xJf $C/int8.tar.xz -C "$E"
timeout 200 qtseg-export --target onnx,openvino-fp32,openvino-bf16 --out "$E" >"$OUT/export.log" 2>&1
say "export rc=$? | $(grep -E 'PASS|FAIL|error' "$OUT/export.log" | tr '\n' ';' | cut -c1-600)"
timeout 260 taskset -c "$CPUS" python3 tools/cpu/goal_figure.py --exports "$E" --threads 1,2 \
  --rounds 8 --per-round 2 --out amx_goal_figure >"$OUT/goal_figure.log" 2>&1
say "goal_figure rc=$?"
cp tools/cpu/results/amx_goal_figure.json "$OUT/" 2>/dev/null
T=$((540 - SECONDS))
if [ "$T" -gt 60 ]; then
  timeout "$T" taskset -c "$CPUS" qtseg-bench "$E"/* --device cpu --threads 2 --warmup 3 --iters 20 \
    --e2e-iters 12 --out /tmp/bench >"$OUT/bench.log" 2>&1
  say "bench rc=$?"; cp /tmp/bench/report.md "$OUT/bench_report.md" 2>/dev/null
  cp /tmp/bench/report.json "$OUT/bench_report.json" 2>/dev/null
fi
say done
