"""Does logit adjustment of the label head draw the rare class? An experiment, not a feature (yet).

The bundled model almost never draws CoNSeP's "other" class (2.4 % of the training nuclei): asked for
120 such nuclei on the test split it drew 7 (docs/model-card.md). Logit adjustment (Menon et al., ICLR
2021, "Long-tail learning via logit adjustment") corrects a classifier trained on imbalanced classes
at inference by adding ``tau * log(n_max / n_c)`` to the logit of nucleus class c (background
untouched); here it is added to the label head's x0 logits at every sampler step. tau = 0 is the
model as it is. With ``--within-nuclei`` the offsets only move probability between the nucleus
classes: the probability of background at every pixel stays the model's, so no nucleus appears where
the model drew none.

    OMP_NUM_THREADS=1 python benchmarks/label_prior.py --tau 1.0 --limit 112 --out runs/bench-prior/tau-1.0
    python benchmarks/sampler_quality.py summary --reference runs/bench-prior/tau-0.0 \\
        runs/bench-prior/tau-* --json-out benchmarks/results-label-prior.json

Each run is a ``sampler_quality.py run`` folder (adherence pairs, report.json, timing.json) with the
same layouts and seeds. Prints JSON.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def adjustment(card, tau: float):
    """The per-class logit offsets (background 0) from the model's training counts."""
    import torch

    counts = card.training_data.get("nuclei") or {}
    n = np.array([float(counts.get(name, 0)) for name in card.vocabulary.nucleus_classes])
    if tau and (n <= 0).any():
        raise SystemExit("the model records no count for every class; logit adjustment needs them")
    offsets = np.zeros(card.vocabulary.n_classes)
    if tau:
        offsets[1:] = tau * np.log(n.max() / n)
    return torch.tensor(offsets, dtype=torch.float32).view(1, -1, 1, 1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tau", type=float, required=True)
    p.add_argument("--model", default="default")
    p.add_argument("--data", default="../shared/data/consep/test")
    p.add_argument("--format", default="consep")
    p.add_argument("--sampler", default="unipc")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--spacing", choices=("quadratic", "trailing"), default=None,
                   help="timestep spacing (default: the sampler's)")
    p.add_argument("--guidance", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--within-nuclei", action="store_true",
                   help="keep P(background) as the model gives it; re-weight the nucleus classes only")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    args.eta = None

    import sampler_quality
    import torch

    import napari_cosynth.engine.diffusion.sampler as sampler_module
    from napari_cosynth import CoSynthPipeline

    offsets = adjustment(CoSynthPipeline.from_pretrained(args.model).card, args.tau)
    predict = sampler_module._predict

    def adjusted(*a, **k):
        image, distance, logits = predict(*a, **k)
        shifted = logits + offsets.to(logits.device)
        if args.within_nuclei:
            nuclei, moved = logits[:, 1:], shifted[:, 1:]
            moved = moved - moved.logsumexp(1, keepdim=True) + nuclei.logsumexp(1, keepdim=True)
            shifted = torch.cat([logits[:, :1], moved], dim=1)
        return image, distance, shifted

    sampler_module._predict = adjusted
    return sampler_quality.cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())
