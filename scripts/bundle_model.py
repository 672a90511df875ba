"""Copy a training checkpoint into the package as a bundled model, with float16 weights.

    python scripts/bundle_model.py runs/default/checkpoints/step-0004000 --name default

The bundled model is what `--model default` and the napari widget load offline. float16 storage
halves the file (the bundled model must stay under 25 MB); weights are cast back to float32 on load.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from napari_cosynth.engine.config import CosynthConfig
from napari_cosynth.engine.networks.checkpoint import load_model, save_model

PACKAGE_MODELS = Path(__file__).resolve().parents[1] / "src" / "napari_cosynth" / "models"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a checkpoint folder written by cosynth train")
    parser.add_argument("--name", default="default")
    parser.add_argument("--dtype", default="float16", choices=("float16", "bfloat16", "float32"))
    parser.add_argument("--canvas", type=int, default=None,
                        help="canvas side the widget and `cosynth generate` use when none is asked for")
    parser.add_argument("--out", default=None,
                        help="write the model folder here instead of into the package (models/NAME)")
    parser.add_argument("--init-from", default=None,
                        help="record the weights the run started from (runs made before init_from "
                             "was saved in checkpoints)")
    parser.add_argument("--separation", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="instance-recovery settings chosen on this model's own output, e.g. "
                             "min_marker_size=5 (fields of labels.instances.SeparationParams)")
    args = parser.parse_args()
    target = Path(args.out) if args.out else PACKAGE_MODELS / args.name
    if target.exists():
        # a bundled model is never replaced in place: its id is recorded in the pairs made with it
        raise SystemExit(f"{target} already exists; remove it first or give another --out")
    model, meta = load_model(args.checkpoint)
    config = CosynthConfig.from_dict(meta["config"])
    keep = ("classes", "tissues", "training_data", "step", "init_from")
    extra = {k: meta[k] for k in keep if k in meta}
    if args.init_from:
        extra["init_from"] = args.init_from
    if args.canvas:
        extra["canvas_size"] = args.canvas
    if args.separation:
        extra["separation"] = {k: json.loads(v) for k, v in (f.split("=", 1) for f in args.separation)}
    extra["model_id"] = f"{args.name}-step{meta.get('step')}"
    extra["source_checkpoint"] = Path(args.checkpoint).name
    out = save_model(target, model, config, extra, weights_dtype=args.dtype)
    size = (out / "model.safetensors").stat().st_size / 1e6
    print(f"{out}: {size:.1f} MB, model id {extra['model_id']}")


if __name__ == "__main__":
    main()
