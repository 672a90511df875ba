"""Pairs per minute per device and memory of ``cosynth generate-dataset``; prints one JSON object.

Drives the same core generator as the CLI in this process (one device), writing into a temporary
folder (or --out), and samples the resident memory after every batch so a growth over the run shows
("rss_mb_first_batch" vs "rss_mb_last_batch"; "peak_rss_mb" is the process's high-water mark,
model load included). Examples (from the repository root):

    python benchmarks/bulk_generation.py --model default --n 20
    python benchmarks/bulk_generation.py --model runs/default --n 200 --batch 8 --device cuda
    python benchmarks/bulk_generation.py --model CKPT --n 20 --size 32 32 --steps 2   # smoke test

Under torchrun the pairs per minute of the whole run is the figure here times the number of
processes (the ranks share nothing but the output folder).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time


def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _peak_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"))
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--layouts", default="hardcore")
    parser.add_argument("--format", default=None)
    parser.add_argument("--export", default="folder")
    parser.add_argument("--out", default=None, help="run folder (default: a temporary one, removed)")
    args = parser.parse_args(argv)

    import torch

    from napari_cosynth import CoSynthPipeline, SamplerSettings
    from napari_cosynth.bulk import generate_dataset, open_source

    settings = SamplerSettings(sampler="fast", steps=args.steps)
    pipe = CoSynthPipeline.from_pretrained(args.model, device=args.device, settings=settings)
    device = pipe.device
    shape = pipe.canvas(args.size)  # the bundled model trains on 64 px crops but draws 128 px pairs
    source = open_source(args.layouts, args.format, card=pipe.card, shape=shape)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or os.path.join(tmp, "run")
        run = generate_dataset(pipe, source, out, args.n, shape=shape, base_seed=0,
                               exports=args.export.split(","), batch=args.batch)
        rss = []
        start = time.perf_counter()
        try:
            while True:
                next(run)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                rss.append(_rss_mb())
        except StopIteration as stop:
            summary = stop.value
        seconds = time.perf_counter() - start
    result = {
        "model": pipe.card.model_id,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "size": list(shape),
        "steps": settings.resolved_steps(pipe.card.timesteps),
        "batch": args.batch,
        "pairs": summary["written"],
        "seconds": round(seconds, 2),
        "pairs_per_minute_per_device": round(60 * summary["written"] / seconds, 2),
        "rss_mb_first_batch": round(rss[0], 1),
        "rss_mb_last_batch": round(rss[-1], 1),
        "peak_rss_mb": round(_peak_mb(), 1),
        "exports": args.export,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
