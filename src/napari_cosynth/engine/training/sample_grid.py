"""The sample grid a joint-model run writes now and then: real crops beside pairs drawn for their points.

One row per crop (the first few of the dataset, always the same crops in a run): the real image,
semantic map and distance map, then the image, semantic map and distance map the model draws for that
crop's points and prompt with the fast sampler. Watching these grids is how one sees a run learn long
before any metric moves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...atomic import atomic_path

GRID_ROWS = 4
GRID_SAMPLER_STEPS = 20
# Seed-derivation tag of the grid's crops: a stream of their own, apart from the training crops.
_GRID_STREAM = 0x6E1D
# Background black, then distinct colours for up to 10 nucleus classes (matplotlib's tab10).
_PALETTE = np.array([
    [0, 0, 0], [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
    [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
], dtype=np.uint8)


def write_sample_grid(path: Path, model, dataset, config, device: torch.device) -> Path:
    """Draw the grid with ``model`` as it is (the caller swaps in the EMA weights) and write ``path``.

    The model is put in eval mode for the sampling and back in train mode afterwards.
    """
    from ...progress import run_to_end
    from ..diffusion.sampler import sample
    from ..pipeline.conditions import encode, to_images

    n = min(GRID_ROWS, len(dataset))
    crops = [dataset.crop(i, np.random.default_rng([config.train.seed, _GRID_STREAM, i])) for i in range(n)]
    batch = {k: torch.stack([c[k] for c in crops]).to(device) for k in ("point_map", "tokens")}
    c = config.data.crop_size
    generator = torch.Generator(device=device).manual_seed(config.train.seed)
    model.eval()
    try:
        with torch.no_grad():
            cond, uncond = encode(model, batch["point_map"], batch["tokens"], 2.0)
            steps = min(GRID_SAMPLER_STEPS, config.diffusion.timesteps)
            out = run_to_end(sample(model, cond, uncond, (n, c, c), kind="fast", steps=steps, guidance=2.0,
                               generator=generator, schedule=config.diffusion))
    finally:
        model.train()
    images, semantics, distances = to_images(out)
    rows = []
    for i, crop in enumerate(crops):
        real_image = ((crop["image"].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
        real_sem = crop["labels"].numpy()
        real_dist = (crop["distance"][0].numpy() + 1) / 2
        rows.append(np.concatenate([
            real_image, _colour(real_sem), _grey(real_dist),
            images[i], _colour(semantics[i]), _grey(distances[i]),
        ], axis=1))
    grid = np.concatenate(rows, axis=0)
    scale = max(1, 128 // c)
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    import imageio.v3 as iio

    with atomic_path(path) as tmp:
        iio.imwrite(tmp, grid, extension=".png")
    return path


def _colour(semantic: np.ndarray) -> np.ndarray:
    return _PALETTE[np.asarray(semantic) % len(_PALETTE)]


def _grey(distance: np.ndarray) -> np.ndarray:
    g = (np.clip(distance, 0, 1) * 255).round().astype(np.uint8)
    return np.repeat(g[:, :, None], 3, axis=2)
