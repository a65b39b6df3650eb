# Device call 2 (issue 16): native backtrace of the AOTI load crash + config variants,
# C++ build check, profile of the fast path. cd .carry/gpu && bash tools/gpu/call2.sh
source tools/gpu/setup_device.sh
unset CMAKE_PREFIX_PATH  # the image has png/jpeg/nlohmann headers; carried debs broke zlib
L=/tmp/logs; S=$OUT/summary.txt
say() { echo "$*" | tee -a "$S"; tar czf $OUT/logs.tgz -C /tmp logs 2>/dev/null; }
{ env | sort; ls -la /opt/gcc/bin | head; file /opt/gcc/bin/g++; which addr2line c++ g++
  python3 -c "import torch._inductor.config as c; print('cxx', c.cpp.cxx)"; } >$L/env2.txt 2>&1
gcc -shared -fPIC -O0 -g tools/gpu/segv_trace.c -o /tmp/segv.so -ldl && export SEGV_SO=/tmp/segv.so
(
  TD=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch
  cmake -S . -B /tmp/cppb -G Ninja -DCMAKE_BUILD_TYPE=Release -DQTSEG_WITH_LIBTORCH=ON \
    -DTorch_DIR="$TD" -DQTSEG_WITH_OPENVINO=OFF -DQTSEG_WITH_TENSORRT=OFF -DQTSEG_WITH_ORT=OFF \
    -DQTSEG_BUILD_TESTS=OFF -DCMAKE_CUDA_ARCHITECTURES=90 && \
  cmake --build /tmp/cppb -j4 --target qtseg_infer_cli; echo "cpp build rc=$?"
) >$L/cpp_build.log 2>&1 &
P="timeout 150 python3 tools/gpu/aoti_probe.py"
K=/tmp/pk
$P build $K --variants default --devices cpu,cuda >$L/build_a.log 2>&1 &
A=$!
$P build $K --variants blob,nopch --devices cpu >$L/build_b.log 2>&1 &
B=$!
wait $A; say "build default: $(grep -c compiled $L/build_a.log) packages"
run() {  # name, args...
  local name=$1; shift
  $P "$@" >$L/$name.log 2>&1
  say "$name rc=$? | $(grep '^\[probe' $L/$name.log | tail -1 | cut -c1-120)"
}
run l1_cpu_loader load $K/cpu_default.pt2 --how loader
run l2_cpu_loader_amx load $K/cpu_default.pt2 --how loader --pre amx
run l3_cuda_loader load $K/cuda_default.pt2 --how loader --device cuda
run l4_cuda_loader_amx load $K/cuda_default.pt2 --how loader --device cuda --pre amx
run l5_cpu_dlopen load $K/cpu_default.pt2 --how dlopen
run l5b_cpu_dlopen_amx load $K/cpu_default.pt2 --how dlopen --pre amx
wait $B; say "build variants: $(grep -c compiled $L/build_b.log) packages"
run l6_cpu_blob_amx load $K/cpu_blob.pt2 --how loader --pre amx
run l7_cpu_nopch_amx load $K/cpu_nopch.pt2 --how loader --pre amx
run l8_cpu_loader_isa load $K/cpu_default.pt2 --how loader --pre isa
# symbolize the first native trace
for f in $L/l*.log; do
  if grep -q "segv_trace\] #" $f; then
    grep "segv_trace" $f | head -30 >$L/trace.txt
    grep -o "#[0-9]* 0x[0-9a-f]* [^ ]*+0x[0-9a-f]*" $f | head -25 | while read -r n a lo; do
      lib=${lo%+*}; off=${lo##*+}; echo "$n $(addr2line -f -C -e $lib $off 2>/dev/null | head -1) [$lo]"
    done >>$L/trace.txt
    say "trace from $f:"; head -60 $L/trace.txt | tee -a $S; break
  fi
done
wait; say "cpp: $(grep 'cpp build rc' $L/cpp_build.log)"
timeout 170 python3 tools/gpu/profile_fast.py --out $L --modes default >$L/profile.log 2>&1
say "profile rc=$?"; grep "^mode" $L/profile.log | tee -a "$S"
