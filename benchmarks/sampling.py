"""Seconds per pair and peak memory of the fast and reference samplers; seconds per training step.

Prints one JSON object. Each measurement runs in a fresh subprocess so that its peak resident memory
(ru_maxrss) is its own. Examples (from the repository root):

    python benchmarks/sampling.py --model default --sizes 64 128 256
    python benchmarks/sampling.py --config configs/default-cpu.yaml --sizes 128 --reference-sizes 64
    python benchmarks/sampling.py --config configs/default-cpu.yaml --train-step

A ``--config`` builds a model with random weights: the timing does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys


def _machine() -> dict:
    import torch

    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _load(args):
    from napari_cosynth import CoSynthPipeline

    if args.config:
        import tempfile

        import torch

        from napari_cosynth.engine.config import CosynthConfig
        from napari_cosynth.engine.networks.checkpoint import save_model
        from napari_cosynth.engine.networks.model import CoSynNet
        from napari_cosynth.vocabularies import CONSEP

        config = CosynthConfig.from_yaml(args.config)
        torch.manual_seed(0)
        model = CoSynNet(config.model, config.text, CONSEP.n_classes)
        folder = save_model(os.path.join(tempfile.mkdtemp(), "bench"), model, config,
                            {"classes": list(CONSEP.names), "tissues": ["colon"]})
        return CoSynthPipeline.from_pretrained(folder, device=args.device)
    return CoSynthPipeline.from_pretrained(args.model, device=args.device)


def _one_sampling(args) -> dict:
    """Run in the child: one warm-up pair at a small size, then the timed pair."""
    import resource
    import time

    import torch

    from napari_cosynth import SamplerSettings
    from napari_cosynth.sample import PointTable

    pipe = _load(args)
    size = args.size
    points = pipe.layouts((size, size), seed=0)[0]
    steps = args.steps if args.kind == "fast" else None
    pipe(PointTable.empty(), size=(32, 32), settings=SamplerSettings("fast", 2, args.guidance), seed=0)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    pipe(points, size=(size, size), settings=SamplerSettings(args.kind, steps, args.guidance), seed=0)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    out = {"sampler": args.kind, "size": size, "steps": steps or "all",
           "guidance": args.guidance, "seconds_per_pair": round(time.perf_counter() - start, 3),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if args.device.startswith("cuda"):
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _one_train_step(args) -> dict:
    import resource
    import tempfile

    from napari_cosynth.engine.config import CosynthConfig
    from napari_cosynth.engine.training.train import train

    config = CosynthConfig.from_yaml(args.config)
    out_dir = os.path.join(tempfile.mkdtemp(), "run")
    times = [p.seconds_per_step for p in train(config, out_dir, steps=args.train_steps,
                                               device=args.device) if p.seconds_per_step]
    times = times[2:] or times  # the first steps include start-up
    return {"train_step_seconds_median": round(sorted(times)[len(times) // 2], 4),
            "batch_size": config.train.batch_size, "crop_size": config.data.crop_size,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _child(args, **override) -> dict:
    argv = [sys.executable, __file__, "--child"]
    for key, value in {**vars(args), **override}.items():
        if value is None or value is False or key in ("child", "sizes", "reference_sizes"):
            continue
        flag = "--" + key.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--config", default=None, help="random-weight model from a training config")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="*", default=[64, 128, 256])
    parser.add_argument("--reference-sizes", type=int, nargs="*", default=[64])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--guidance", type=float, default=2.0)
    parser.add_argument("--train-step", action="store_true", help="also time training steps (needs --config)")
    parser.add_argument("--train-steps", type=int, default=12)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="fast", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=128, help=argparse.SUPPRESS)
    parser.add_argument("--what", default="sampling", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_one_train_step(args) if args.what == "train" else _one_sampling(args)))
        return
    report = {"machine": _machine(), "model": args.config or args.model, "device": args.device,
              "results": []}
    for size in args.sizes:
        report["results"].append(_child(args, kind="fast", size=size))
    for size in args.reference_sizes:
        report["results"].append(_child(args, kind="reference", size=size))
    if args.train_step:
        if not args.config:
            raise SystemExit("--train-step needs --config")
        report["training"] = _child(args, what="train")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
