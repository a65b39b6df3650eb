# Device call 6 (session 4): issue 16's throughput goal at larger batches, where the b1 time
# goes (kernel profile), and issue 15's per-layer OpenVINO profile on the host's AMX Xeon.
#   run(command="bash tools/gpu/call6.sh", carry=[".carry/amx"], timeout_s=590)   (repo root)
# .carry/amx: see tools/cpu/amx_call.sh (openvino for the CPU part; the INT8 IRs).
# GPU part on cores 0-7 (nothing else on the GPU); meanwhile the bf16 IR is exported on cores
# 8-15; the CPU profile runs afterwards, alone, pinned to two cores like amx_call.sh.
set -u
export OUT=${OUT:-/tmp/out} PYTHONUNBUFFERED=1
C=.carry/amx; E=/tmp/amx_exports; S=$OUT/summary.txt
mkdir -p "$OUT" /tmp/site "$E"
say() { echo "[${SECONDS}s] $*" | tee -a "$S"; }
python3 -m pip install -q --no-deps --no-build-isolation -e . >/tmp/pip.log 2>&1 || say "pip -e failed"
say "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader)"
(
  tar xJf $C/ov312.tar.xz -C /tmp/site
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $C/*.whl
  tar xJf $C/int8.tar.xz -C "$E"
  PYTHONPATH=/tmp/site timeout 400 taskset -c 8-15 qtseg-export --target openvino-bf16 --out "$E" \
    >"$OUT/export.log" 2>&1
  echo "export rc=$?" >>"$OUT/export.log"
) &
EXPORT=$!
timeout 330 taskset -c 0-7 python3 tools/gpu/fast_gpu.py --out /tmp/f1 --rows eager-fp32,fast-fp16 \
  --batch 128,256,512 --iters 150 --rounds 3 --profile 2>&1 | grep -v Warning >"$OUT/gpu.log"
say "gpu rc=${PIPESTATUS[0]}"
cp /tmp/f1/fast_gpu.json "$OUT/gpu.json" 2>/dev/null
wait $EXPORT
say "$(tail -1 "$OUT/export.log") $(grep -E 'PASS|FAIL' "$OUT/export.log" | tr '\n' ';' | cut -c1-300)"
CPUS=$(lscpu -p=CPU,CORE | grep -v '^#' | sort -t, -k2,2n -u | head -2 | cut -d, -f1 | paste -sd,)
say "cpus $CPUS; $(grep -m1 'model name' /proc/cpuinfo); amx: $(grep -o -m1 'amx_int8' /proc/cpuinfo)"
PYTHONPATH=/tmp/site timeout $((570 - SECONDS)) taskset -c "$CPUS" python3 tools/cpu/ov_layer_profile.py \
  "$E"/qtseg-v2_openvino-bf16 "$E"/qtseg-v2_openvino-int8 --threads 1,2 --iters 20 \
  --out amx_ov_layer_profile >"$OUT/cpu_profile.log" 2>&1
say "cpu profile rc=$?"
cp tools/cpu/results/amx_ov_layer_profile.json "$OUT/" 2>/dev/null
say done
