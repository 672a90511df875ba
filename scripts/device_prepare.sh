#!/usr/bin/env bash
# Prepare, on this (CPU) machine, what scripts/device_train.sh needs on a lent GPU machine that reaches
# no network: the pure-Python packages its image lacks, as wheels in .whl/, and the CoNSeP patches in
# .device-data/ (both git-ignored through .git/info/exclude: the data never enters the repository).
# Then call the device tool's run with carry [".whl", ".device-data"] and the command
#   bash scripts/device_train.sh
# and timeout_s 600. docs/training.md ("One GPU call") says what comes back.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/consep}
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
grep -qx '/.device-data/' .git/info/exclude 2>/dev/null || echo '/.device-data/' >> .git/info/exclude
mkdir -p .whl .device-data
# The GPU image has torch, timm, huggingface_hub, safetensors, scikit-image, tifffile, pandas and
# torchmetrics; these four are missing (versions as installed here).
version() { python3 -c "import importlib.metadata as m; print(m.version('$1'))"; }
python3 -m pip download -q --no-deps --only-binary=:all: -d .whl \
  "diffusers==$(version diffusers)" "open_clip_torch==$(version open_clip_torch)" \
  "ftfy==$(version ftfy)" "wcwidth==$(version wcwidth)"
rm -rf .device-data/consep && cp -r "$data" .device-data/consep
du -sh .whl .device-data
