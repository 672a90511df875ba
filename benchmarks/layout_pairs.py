"""Shared by the benchmarks that set pairs drawn on real layouts beside the real patches they came from.

``label_prior.py`` (through ``cosynth evaluate adherence``) names each pair after its source patch,
``<index>-<patch name>`` (``0007-test_1_007``); these helpers parse the common options, read the real
patches by name and match every pair to its patch, with a clear error when one is missing, and
give both sides the same grey level.
"""

from __future__ import annotations

import argparse

import numpy as np

from napari_cosynth.data.registry import open_dataset

# The weights of c2st.luminance, without its per-crop standardisation (SSIM and mean darkness need
# the absolute level).
GREY = np.array([0.299, 0.587, 0.114])


def grey(image: np.ndarray) -> np.ndarray:
    """Grey level 0-255 (float64) of an RGB or RGBA image."""
    return image[..., :3].astype(np.float64) @ GREY


def parse_args(description: str, argv=None) -> argparse.Namespace:
    """``--real`` (one or more datasets), ``--real-format``, ``--mag`` and ``--pairs`` (folders)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--real", nargs="+", required=True, help="real datasets holding the layouts' patches")
    ap.add_argument("--real-format", default="consep")
    ap.add_argument("--mag", type=float, default=None)
    ap.add_argument("--pairs", nargs="+", required=True, help="folders of pairs named <index>-<patch>")
    return ap.parse_args(argv)


def real_patches(args: argparse.Namespace) -> dict:
    """Every real sample of ``--real``, by name."""
    return {s.name: s for path in args.real
            for s in open_dataset(path, args.real_format, magnification=args.mag)}


def pairs_with_layouts(folder, real: dict, real_paths) -> list[tuple[str, object]]:
    """``(patch name, pair)`` for every pair of ``folder``; exits naming the first pair without a patch."""
    pairs = [(s.name.split("-", 1)[1], s) for s in open_dataset(folder, "folder")]
    missing = [name for name, _ in pairs if name not in real]
    if missing:
        raise SystemExit(f"{folder}: no real patch named {missing[0]!r} in {real_paths}")
    return pairs
