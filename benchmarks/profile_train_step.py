"""Where one training step of the joint model spends its CPU time; prints JSON.

    python benchmarks/profile_train_step.py --config configs/default-cpu.yaml --threads 1 \
        [--crop 64 --batch 16] [--steps 6] [--set KEY=VALUE ...]

Builds a real run (the configured data, model and optimiser) in a temporary folder, times the data
loading of a batch, then profiles whole steps with torch.profiler and sums the operators' own CPU
time into the step's parts: normalisation (GroupNorm / LayerNorm), attention (scaled dot-product,
softmax and the batched matmuls), convolutions, linear layers, the optimiser and EMA, and the rest.
A second pass with forward/backward hooks times the network's top-level parts (UNet, point encoder,
text encoder, the input embeddings and heads) and the loss terms. The first steps are warm-up and are
not counted.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections import defaultdict

import torch

PARTS = {
    "normalisation": ("group_norm", "layer_norm", "native_group_norm", "native_layer_norm"),
    "attention": ("scaled_dot_product", "_efficient_attention", "_flash_attention", "softmax", "bmm",
                  "baddbmm"),
    "convolution": ("convolution", "conv2d", "mkldnn_convolution", "_slow_conv2d", "thnn_conv2d",
                    "conv_depthwise"),
    "linear": ("addmm", "linear", "aten::mm"),
    "optimiser + EMA": ("_foreach_", "adamw", "lerp"),
    "activation": ("silu", "gelu", "sigmoid"),
    "upsample / resample": ("upsample", "interpolate"),
}


def _part(op: str) -> str:
    name = op.lower()
    for part, keys in PARTS.items():
        if any(k in name for k in keys):
            return part
    return "other (elementwise, copies, losses)"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/default-cpu.yaml")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--crop", type=int, default=None, help="override data.crop_size")
    ap.add_argument("--batch", type=int, default=None, help="override train.batch_size")
    ap.add_argument("--steps", type=int, default=6, help="profiled steps (after 2 warm-up steps)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)

    from napari_cosynth.engine.config import CosynthConfig
    from napari_cosynth.engine.training.train import Trainer

    torch.set_num_threads(args.threads)
    import yaml

    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    overrides["train.num_workers"] = 0
    if args.crop:
        overrides["data.crop_size"] = args.crop
    if args.batch:
        overrides["train.batch_size"] = args.batch
    config = CosynthConfig.from_yaml(args.config).with_overrides(overrides)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(config, out, steps=args.steps + 2)
        ds, tc = trainer.dataset, config.train
        keys = [(i % len(ds), i) for i in range(tc.batch_size)]
        tick = time.perf_counter()
        batches = [torch.utils.data.default_collate([ds[(k[0], k[1] + s * 1000)] for k in keys])
                   for s in range(args.steps + 2)]
        load_s = (time.perf_counter() - tick) / len(batches)
        for s in range(2):
            trainer._train_step(s, batches[s])

        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            tick = time.perf_counter()
            for s in range(2, args.steps + 2):
                trainer._train_step(s, batches[s])
            step_s = (time.perf_counter() - tick) / args.steps
        parts: dict[str, float] = defaultdict(float)
        for ev in prof.key_averages():
            parts[_part(ev.key)] += ev.self_cpu_time_total / 1e6 / args.steps
        total = sum(parts.values())
        modules = _module_times(trainer, batches[2:], args.steps)

    return {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s), "
                   f"torch {torch.__version__}",
        "config": args.config, "overrides": overrides,
        "crop": config.data.crop_size, "batch": config.train.batch_size,
        "seconds_per_step": round(step_s, 3),
        "data_loading_seconds_per_batch": round(load_s, 3),
        "operator_share": {k: round(v / total, 3) for k, v in sorted(parts.items(), key=lambda kv: -kv[1])},
        "module_seconds_per_step_forward_plus_backward": modules,
    }


def _module_times(trainer, batches, steps) -> dict:
    """Forward + backward seconds per step of the network's top-level parts, from hooks."""
    model = trainer.model
    parts = {"unet": model.unet, "point encoder": model.points, "text encoder": model.text,
             "heads": model.heads, "final": model.final}
    spent: dict[str, float] = defaultdict(float)
    starts: dict[str, float] = {}
    handles = []
    for name, module in parts.items():
        def pre(_m, _i, name=name):
            starts[name] = time.perf_counter()

        def post(_m, _i, _o, name=name):
            spent[name] += time.perf_counter() - starts[name]

        def bpre(_m, _g, name=name):
            starts[name + " backward"] = time.perf_counter()

        def bpost(_m, _gi, _go, name=name):
            spent[name] += time.perf_counter() - starts.pop(name + " backward", time.perf_counter())

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post),
                    module.register_full_backward_pre_hook(bpre), module.register_full_backward_hook(bpost)]
    tick = time.perf_counter()
    for s, batch in enumerate(batches):
        trainer._train_step(100 + s, batch)
    whole = (time.perf_counter() - tick) / steps
    for h in handles:
        h.remove()
    out = {k: round(v / steps, 3) for k, v in spent.items()}
    out["whole step"] = round(whole, 3)
    out["rest (losses, diffusion, optimiser, EMA)"] = round(whole - sum(spent.values()) / steps, 3)
    return out


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
