# Device call 3 (issue 16): the fix on the real model, fast paths vs plain PyTorch, AOTI, C++.
# cd .carry/gpu && bash tools/gpu/call3.sh
source tools/gpu/setup_device.sh
L=/tmp/logs; S=$OUT/summary.txt
say() { echo "$*" | tee -a "$S"; tar czf $OUT/logs.tgz -C /tmp logs 2>/dev/null; }
{ echo "== /opt/gcc/bin/g++:"; cat /opt/gcc/bin/g++; echo; echo "== /opt/gcc/bin/gcc:"; cat /opt/gcc/bin/gcc
  python3 -c "from qtseg.export.aoti import _cxx_runtime as r, package_compiler as p
print('CXX wrapper links libstdc++:', r('/opt/gcc/bin/g++')); print('/usr/bin/g++:', r('/usr/bin/g++'))
print('package compiler:', p())"; } >$L/compiler.txt 2>&1
say "$(tail -3 $L/compiler.txt | tr '\n' ';')"
(
  TD=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch
  cmake -S . -B /tmp/cppb -G Ninja -DCMAKE_BUILD_TYPE=Release -DQTSEG_WITH_LIBTORCH=ON \
    -DTorch_DIR="$TD" -DQTSEG_WITH_OPENVINO=OFF -DQTSEG_WITH_TENSORRT=OFF -DQTSEG_WITH_ORT=OFF \
    -DQTSEG_BUILD_TESTS=OFF -DCMAKE_CUDA_ARCHITECTURES=90 && \
  cmake --build /tmp/cppb -j4 --target qtseg_infer_cli; echo "cpp build rc=$?"
) >$L/cpp_build.log 2>&1 &
CPP=$!
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/backends/test_aoti_backend.py \
  tests/backends/test_torch_backend.py tests/backends/test_elf.py >$L/pytest.log 2>&1 &
PT=$!
timeout 225 python3 tools/gpu/fast_gpu.py --out /tmp/fast --aoti-export --wait-pid $PT \
  --rows eager-fp32,eager-amp,fast-fp16,aoti-fp16,aoti-fp16-graph --iters 150 \
  >$L/fast_gpu.log 2>&1
say "fast_gpu rc=$? | $(grep -E 'ready|FAILED|aoti export' $L/fast_gpu.log | cut -c1-230)"
cp /tmp/fast/fast_gpu.json $OUT/ 2>/dev/null; cp /tmp/fast/aoti_export.log $L/ 2>/dev/null
grep "^|" $L/fast_gpu.log | tee -a $S
wait $PT; say "pytest: $(tail -1 $L/pytest.log)"
wait $CPP; say "$(tail -1 $L/cpp_build.log)"
A=$(ls -d /tmp/fast/exports/*_aoti-cuda-fp16 2>/dev/null | head -1)
IMG=$(ls qtseg/assets/samples/images/* | head -1)
if [ -n "$A" ] && [ -x /tmp/cppb/cpp/qtseg_infer ]; then
  B="/tmp/cppb/cpp/qtseg_infer --artifact $A --input $IMG --device cuda --bench 200 --warmup 20"
  timeout 60 $B --dump-input /tmp/in.f32 --dump-logits /tmp/cpp_graph.f32 >$L/cpp_graph.log 2>&1
  say "cpp graph rc=$? | $(grep -E 'backend:|infer|end-to-end' $L/cpp_graph.log | tr '\n' ';' | cut -c1-400)"
  QTSEG_LIBTORCH_CUDA_GRAPH=0 timeout 60 $B --dump-logits /tmp/cpp_plain.f32 >$L/cpp_plain.log 2>&1
  say "cpp plain rc=$? | $(grep -E 'infer|end-to-end' $L/cpp_plain.log | tr '\n' ';')"
  timeout 60 python3 tools/gpu/cpp_parity.py $A /tmp/in.f32 /tmp/cpp_graph.f32 /tmp/cpp_plain.f32 2>&1 | tail -2 | tee -a $S
fi
say "done"
