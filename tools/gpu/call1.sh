# Device call 1 (issue 16): environment, AOTI load-crash probes, C++ build check, profile.
# Usage on the device: cd .carry/gpu && bash tools/gpu/call1.sh
source tools/gpu/setup_device.sh
L=/tmp/logs
S=$OUT/summary.txt
say() { echo "$*" | tee -a "$S"; tar czf $OUT/logs.tgz -C /tmp logs 2>/dev/null; }

{
  nvidia-smi; python3 -V; which python3
  python3 -c "import torch; print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version())"
  gcc --version | head -1; g++ --version | head -1; nvcc --version | tail -2; cmake --version | head -1
  lscpu | grep -E "Model name|^CPU\(s\)|Flags" | cut -c1-400
  ulimit -a; df -h /tmp; mount | grep -E " /tmp | / " ; uname -a
  ls /usr/include/png.h /usr/include/jpeglib.h /usr/include/nlohmann 2>&1
} >$L/env.txt 2>&1
say "== env: $(python3 -c 'import torch; print(torch.__version__)') $(gcc --version | head -1)"

# C++ (libtorch backend only) in the background while the probes run
(
  TD=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch
  cmake -S . -B /tmp/cppb -G Ninja -DCMAKE_BUILD_TYPE=Release -DQTSEG_WITH_LIBTORCH=ON \
    -DTorch_DIR="$TD" -DQTSEG_WITH_OPENVINO=OFF -DQTSEG_WITH_TENSORRT=OFF -DQTSEG_WITH_ORT=OFF \
    -DQTSEG_BUILD_TESTS=OFF -DCMAKE_CUDA_ARCHITECTURES=90 && \
  cmake --build /tmp/cppb -j6 --target qtseg_infer_cli
  echo "cpp build rc=$?"
) >$L/cpp_build.log 2>&1 &
CPP=$!

P="timeout 240 python3 -X faulthandler tools/gpu/aoti_probe.py"
run() {  # name, args...
  local name=$1; shift
  $P "$@" >$L/$name.log 2>&1
  local rc=$?
  say "$name rc=$rc | $(grep '^\[probe' $L/$name.log | tail -1 | cut -c1-150)"
}
run build build /tmp/pk
K=/tmp/pk
run cpu_plain_api load $K/cpu_plain.pt2
run cpu_meta_api load $K/cpu_meta.pt2
run cpu_meta_steps load $K/cpu_meta.pt2 --how steps
run cpu_meta_meta_then_api load $K/cpu_meta.pt2 --how meta-then-api
run cpu_runners2 load $K/cpu_meta.pt2 --runners 2
run cpu_copy_shm load $K/cpu_meta.pt2 --copy-to /dev/shm/pk
run cpu_pre_ort load $K/cpu_meta.pt2 --pre onnxruntime
run cpu_pre_qtseg load $K/cpu_meta.pt2 --pre qtseg
run cpu_pre_compile load $K/cpu_meta.pt2 --pre compile
run cuda_api load $K/cuda_meta.pt2 --device cuda
run cuda_steps load $K/cuda_meta.pt2 --device cuda --how steps
run cuda_runners2 load $K/cuda_meta.pt2 --device cuda --runners 2
run same_cpu buildload /tmp/pk2 --device cpu --how steps
run same_cuda buildload /tmp/pk2 --device cuda --how steps

timeout 300 python3 -X faulthandler -m pytest -q -x -p no:cacheprovider \
  tests/backends/test_aoti_backend.py >$L/pytest_aoti.log 2>&1
say "pytest aoti backend rc=$? | $(tail -1 $L/pytest_aoti.log)"

# native backtrace of the first crashing load (cuda-gdb works as gdb here)
for name in cpu_plain_api cpu_meta_steps cuda_steps same_cpu; do
  if grep -q "Fatal Python error" $L/$name.log; then
    case $name in
      cpu_plain_api) a="load $K/cpu_plain.pt2";;
      cpu_meta_steps) a="load $K/cpu_meta.pt2 --how steps";;
      cuda_steps) a="load $K/cuda_meta.pt2 --device cuda --how steps";;
      same_cpu) a="buildload /tmp/pk3 --device cpu --how steps";;
    esac
    timeout 150 cuda-gdb -q -batch -ex "set pagination off" -ex "set cuda api_failures ignore" \
      -ex run -ex bt -ex "info sharedlibrary" --args python3 tools/gpu/aoti_probe.py $a \
      >$L/gdb_$name.log 2>&1
    say "gdb $name rc=$? | $(grep -m3 '^#' $L/gdb_$name.log | tr '\n' ' ' | cut -c1-400)"
    break
  fi
done

wait $CPP
say "cpp: $(tail -1 $L/cpp_build.log)"
ls -la /tmp/cppb/cpp/qtseg_infer >>$L/cpp_build.log 2>&1

timeout 220 python3 tools/gpu/profile_fast.py --out $L --modes eager,default >$L/profile.log 2>&1
say "profile rc=$?"; grep "^mode" $L/profile.log | tee -a "$S"
tar czf $OUT/logs.tgz -C /tmp logs
