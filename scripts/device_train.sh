#!/usr/bin/env bash
# One call of a lent GPU machine (at most 10 minutes): fine-tune the bundled model's architecture with
# configs/default-gpu.yaml for TRAIN_SECONDS, bundle the newest checkpoint as float16 safetensors
# (about 14 MB, under the 16 MB a file that comes back), and measure adherence on EVAL_LIMIT CoNSeP
# test layouts with the fast sampler. Prepared by scripts/device_prepare.sh.
# Everything lands in $OUT: model/ (config.json + model.safetensors), loss.csv, adherence.json,
# grid.png, log.txt. Runs on a CPU too, for a check of the script itself:
#   OUT=/tmp/out DEVICE=cpu TRAIN_SECONDS=60 EVAL_LIMIT=2 bash scripts/device_train.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the folder that comes back}
DEVICE=${DEVICE:-cuda}
TRAIN_SECONDS=${TRAIN_SECONDS:-390}
EVAL_LIMIT=${EVAL_LIMIT:-32}
DATA=${DATA:-.device-data/consep}
RUN=${RUN:-/tmp/cosynth-gpu-run}
exec > >(tee "$OUT/log.txt") 2>&1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD/src
else
  export PYTHONPATH=$PWD/src:${PYTHONPATH:-}
fi
cosynth() { python3 -m napari_cosynth.cli "$@"; }
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
extra=()
[ "$DEVICE" = cpu ] && extra=(--set train.batch_size=4 --set train.num_workers=0 --set train.checkpoint_every=2)
# The run stops at TRAIN_SECONDS; checkpoints every train.checkpoint_every steps keep what it learned.
timeout -s INT "$TRAIN_SECONDS" python3 -m napari_cosynth.cli train --config configs/default-gpu.yaml \
  --out "$RUN" --init-from default --device "$DEVICE" --set "data.path=$DATA/train" --quiet "${extra[@]}"
echo "training ended with status $? (124 or 130: stopped at the time budget)"
cp "$RUN/loss.csv" "$OUT/" 2>/dev/null
newest=$(ls -d "$RUN"/checkpoints/step-* 2>/dev/null | sort | tail -n 1)
[ -n "$newest" ] || { echo "no checkpoint was written"; exit 1; }
python3 scripts/bundle_model.py "$newest" --name default-gpu --canvas 128 --out "$OUT/model" || exit 1
cosynth evaluate adherence --model "$OUT/model" --data "$DATA/test" --format consep --seed 0 \
  --limit "$EVAL_LIMIT" --device "$DEVICE" --quiet --json --out "$RUN/adherence" > "$OUT/adherence.json"
cp "$RUN/adherence/grid.png" "$OUT/" 2>/dev/null
ls -la "$OUT" "$OUT/model"
