# Sourced at the start of every device call (see tools/gpu/NOTES.md).
# Run from the carried worktree copy (.carry/gpu inside the lead's checkout):
# links the bundled checkpoint from the lead's tree, installs this copy
# editable (no deps: the image has torch, numpy, pillow, safetensors, tqdm)
# and unpacks the C++ build dependencies carried as Debian packages.
set -u
HERE=$(pwd)
MAIN=$(cd ../.. && pwd)
export OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/logs
[ -e qtseg/assets ] || ln -s "$MAIN/qtseg/assets" qtseg/assets
python3 -m pip install -q --no-deps --no-build-isolation -e . >/tmp/logs/pip.log 2>&1 \
  || echo "pip -e failed (see pip.log)"
python3 -c "import qtseg.export, qtseg.bench; print('qtseg from', qtseg.__file__)"
if [ -d ../debs ]; then
  mkdir -p /tmp/deps
  for f in ../debs/*.deb; do dpkg -x "$f" /tmp/deps; done
  export CMAKE_PREFIX_PATH=/tmp/deps/usr
  export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
fi
export PYTHONUNBUFFERED=1
