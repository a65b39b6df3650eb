# Copy this worktree (minus venv, git, the 18.5 MB checkpoint, build outputs) into the
# lead's checkout, where the device tool picks it up with carry [".carry"].
set -e
SRC=$(cd "$(dirname "$0")/../.." && pwd)
DST=/work/main/.carry
rm -rf "$DST/gpu"
mkdir -p "$DST/gpu" "$DST/debs"
(cd "$SRC" && tar cf - --exclude=./.venv --exclude=./.git --exclude=./qtseg/assets \
  --exclude='*.egg-info' --exclude=__pycache__ --exclude=./build --exclude=./runs \
  --exclude=./exports .) | (cd "$DST/gpu" && tar xf -)
if [ -d /tmp/gpudebs ]; then cp /tmp/gpudebs/*.deb "$DST/debs/"; fi
du -sh "$DST"
