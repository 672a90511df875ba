"""Bounds on seeds, canvas sizes and magnifications, checked before any work or memory is committed.

One place for the checks every command shares, so that ``cosynth generate --seed -1`` and
``cosynth generate-dataset --seed -1`` answer the same line, and a size or magnification whose arrays
would not fit in memory is refused at once with the flag and the limit named (instead of hanging while
a layout is drawn on a 60000 x 60000 canvas, or allocating 14 GiB to resample a dataset to 4000x).

:func:`check_args` runs on every parsed command line (``cosynth.main``): it looks at the options by
their destination name, so a new subcommand whose flags are called ``--seed``, ``--size`` or ``--mag``
is covered without further code. The core functions (:func:`check_seed`, :func:`check_canvas`,
:func:`check_magnification`, :func:`check_pixels`) are also called by the library where the work
happens (resampling, reading a config), for callers of the Python API.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .errors import CosynthError

__all__ = [
    "MAX_CANVAS_PIXELS",
    "MAX_IMAGE_PIXELS",
    "MAX_MAGNIFICATION",
    "MAX_SEED",
    "check_args",
    "check_canvas",
    "check_generation_memory",
    "check_magnification",
    "check_pixels",
    "check_seed",
]

# torch.manual_seed takes unsigned 64-bit seeds, JSON readers in other languages signed 64-bit ones;
# seeds the project draws itself are 63-bit, and per-pair seeds add a small index to a base seed.
MAX_SEED = 2**63 - 1
# The largest canvas the napari widget offers (4096 x 4096); a generated pair of that size already
# needs tens of GiB on the CPU with the bundled model (about 2.7 KB per pixel with guidance).
MAX_CANVAS_SIDE = 4096
MAX_CANVAS_PIXELS = MAX_CANVAS_SIDE * MAX_CANVAS_SIDE
# The highest objective magnification in use (100x oil immersion); a whole CoNSeP tile at 100x is
# 2500 x 2500 pixels.
MAX_MAGNIFICATION = 100.0
# One image after resampling: 8192 x 8192 pixels hold about 1.5 GiB of image, instances and maps.
MAX_IMAGE_SIDE = 8192
MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE * MAX_IMAGE_SIDE

# Destination names of options that hold seeds (one or several), canvas sizes and magnifications.
_SEED_OPTIONS = ("seed", "seeds", "subset_seed", "synthetic_seed", "base_seed")
_SIZE_OPTIONS = ("size",)
_MAG_OPTIONS = ("mag", "magnification")


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as an int in 0..:data:`MAX_SEED`, or a CosynthError naming ``name``."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        try:
            as_int = int(seed)
        except (TypeError, ValueError, OverflowError):
            as_int = None
        if as_int is None or as_int != seed:
            raise CosynthError(f"{name}: a seed is a whole number from 0 to {MAX_SEED}, got {seed!r}")
        seed = as_int
    if not 0 <= seed <= MAX_SEED:
        raise CosynthError(
            f"{name}: a seed is a whole number from 0 to {MAX_SEED} (2**63 - 1), got {seed}"
        )
    return seed


def check_canvas(shape: Sequence[int], name: str = "size") -> tuple[int, int]:
    """``shape`` (H, W) as ints if it is a canvas that fits in memory, else a CosynthError naming ``name``.

    Both sides must be positive and the canvas at most :data:`MAX_CANVAS_PIXELS` pixels (4096 x
    4096); whether a side is a multiple of what a model's UNet needs is the model's check.
    """
    try:
        h, w = (int(v) for v in shape)
    except (TypeError, ValueError) as err:
        raise CosynthError(f"{name}: a canvas size is two whole numbers H W, got {shape!r} ({err})") from None
    if h < 1 or w < 1:
        raise CosynthError(f"{name}: height and width must be positive, got {h} {w}")
    if h * w > MAX_CANVAS_PIXELS:
        raise CosynthError(
            f"{name}: a {h} x {w} canvas is larger than the limit of {MAX_CANVAS_PIXELS:,} pixels "
            f"({MAX_CANVAS_SIDE} x {MAX_CANVAS_SIDE}); its arrays would not fit in memory. Generate "
            "several smaller pairs instead"
        )
    return h, w


def check_magnification(magnification, name: str = "magnification") -> float:
    """``magnification`` as a float in (0, :data:`MAX_MAGNIFICATION`], or a CosynthError naming ``name``."""
    try:
        value = float(magnification)
    except (TypeError, ValueError, OverflowError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise CosynthError(
            f"{name} must be a positive number such as 20 or 40, got {magnification!r}"
        )
    if value > MAX_MAGNIFICATION:
        raise CosynthError(
            f"{name}: {value:g}x is above the limit of {MAX_MAGNIFICATION:g}x (the highest objective "
            "in use); resampled images would not fit in memory"
        )
    return value


def check_pixels(h: int, w: int, what: str, advice: str = "choose a lower magnification") -> None:
    """Refuse to allocate an image of ``h`` x ``w`` pixels above :data:`MAX_IMAGE_PIXELS`."""
    if h * w > MAX_IMAGE_PIXELS:
        raise CosynthError(
            f"{what} would be {h} x {w} pixels, above the limit of {MAX_IMAGE_PIXELS:,} pixels "
            f"({MAX_IMAGE_SIDE} x {MAX_IMAGE_SIDE}) for one image; {advice}"
        )


# Peak memory of one generated pair per pixel and per UNet base channel, guidance included: the
# bundled model (16 base channels) grew by 0.80 GB for a 512 x 512 pair on the CPU (3.05 KB/pixel).
BYTES_PER_PIXEL_PER_CHANNEL = 190


def free_memory(device) -> int | None:
    """Bytes that can still be allocated on ``device`` (None when unknown, e.g. on MPS)."""
    kind = getattr(device, "type", str(device).split(":")[0])
    try:
        if kind == "cuda":
            import torch

            return int(torch.cuda.mem_get_info(device)[0])
        if kind == "cpu":
            import psutil

            return int(psutil.virtual_memory().available)
    except (ImportError, RuntimeError, OSError):
        return None
    return None


def check_generation_memory(shape: Sequence[int], base_channels: int, device, batch: int = 1,
                            name: str = "--size") -> None:
    """Refuse a canvas whose generation would not fit in ``device``'s free memory, naming ``name``.

    The estimate (:data:`BYTES_PER_PIXEL_PER_CHANNEL`) scales with the pixels, the pairs drawn at
    once and the model's width; it is checked against what the device has free now.
    """
    h, w = (int(v) for v in shape)
    per_pixel = BYTES_PER_PIXEL_PER_CHANNEL * int(base_channels) * max(1, int(batch))
    needed = h * w * per_pixel
    free = free_memory(device)
    if free is None or needed <= free:
        return
    side = int(math.sqrt(free / per_pixel)) // 8 * 8
    raise CosynthError(
        f"{name}: generating {batch} pair(s) of {h} x {w} with this model needs about "
        f"{needed / 2**30:.1f} GiB, more than the {free / 2**30:.1f} GiB free on {device}; the "
        f"largest square canvas that fits now is about {side} x {side}"
    )


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def check_args(args) -> None:
    """Check every seed, canvas size and magnification option of a parsed command line.

    Options are recognised by their destination name (``seed``, ``seeds``, ``size``, ``mag``, ...);
    an option left at None is not checked. Every number option must also be finite: argparse's
    ``type=float`` takes "nan" and "inf", which pass any range check made later (``--guidance nan``
    drew pairs of NaN). Raises CosynthError naming the flag.
    """
    values = vars(args)
    for dest, value in values.items():
        if value is None:
            continue
        for number in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(number, float) and not math.isfinite(number):
                raise CosynthError(f"{_flag(dest)} must be a finite number, got {number}")
        if dest in _SEED_OPTIONS:
            for seed in value if isinstance(value, (list, tuple)) else (value,):
                check_seed(seed, _flag(dest))
        elif dest in _SIZE_OPTIONS:
            check_canvas(value, _flag(dest))
        elif dest in _MAG_OPTIONS:
            check_magnification(value, _flag(dest))
