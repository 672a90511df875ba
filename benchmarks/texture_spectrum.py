"""Where generated texture differs from real: luminance power by spatial frequency band.

    python benchmarks/texture_spectrum.py --real ../shared/data/consep/test --real-format consep \
        --mag 20 --tile-pattern '(t(?:rain|est)_\\d+)_' --fake runs/bench-prior/cand15k-test/pairs

The two-sample test of ``cosynth evaluate realism`` says *whether* a classifier tells generated
luminance crops from real ones, not *what* it sees. Blur shows as missing power at high spatial
frequencies, so this compares the radially averaged power spectrum of the same standardised 64 px
luminance crops the test uses (``load_image_set`` and ``luminance`` of the library), band by band:
log2(generated / real), 0 = the same power, -1 = half. The same figure between the real tiles split in
two halves by tile gives the scale of tile-to-tile variation. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import re

import numpy as np

from napari_cosynth.evaluate.c2st import luminance
from napari_cosynth.evaluate.realism import load_image_set

# Cycles per 64 px crop; 32 is the Nyquist frequency.
BANDS = ((1, 4), (4, 8), (8, 16), (16, 24), (24, 32))


def radial_power(crops: np.ndarray) -> np.ndarray:
    """Mean power at each integer radius 1 .. n/2 - 1 of the standardised luminance crops."""
    grey = luminance(crops)[:, 0]
    power = (np.abs(np.fft.fftshift(np.fft.fft2(grey), axes=(1, 2))) ** 2).mean(0)
    n = grey.shape[1]
    yy, xx = np.indices((n, n)) - n // 2
    radius = np.rint(np.hypot(yy, xx)).astype(int)
    return np.array([power[radius == k].mean() for k in range(1, n // 2)])


def band_ratios(power: np.ndarray, reference: np.ndarray) -> dict:
    """log2 of the band power of ``power`` over that of ``reference``, per band."""
    return {f"{a}-{b}": round(float(np.log2(power[a - 1:b - 1].mean() / reference[a - 1:b - 1].mean())), 3)
            for a, b in BANDS}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", required=True)
    ap.add_argument("--real-format", default="consep")
    ap.add_argument("--fake", nargs="+", required=True, help="folders of generated pairs")
    ap.add_argument("--fake-format", default="folder")
    ap.add_argument("--mag", type=float, default=None)
    ap.add_argument("--tile-pattern", default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    pattern = re.compile(args.tile_pattern) if args.tile_pattern else None

    real = load_image_set(args.real, args.real_format, "--real", magnification=args.mag,
                          pattern=pattern, seed=args.seed)
    reference = radial_power(real.crops)
    tiles = sorted(set(real.groups))
    first = [i for i, g in enumerate(real.groups) if g in tiles[::2]]
    second = [i for i, g in enumerate(real.groups) if g not in tiles[::2]]
    out = {
        "bands_cycles_per_64px": [f"{a}-{b}" for a, b in BANDS],
        "real": {"path": args.real, "crops": len(real.crops), "tiles": len(tiles)},
        "real_tiles_half_vs_half": band_ratios(radial_power(real.subset(first).crops),
                                               radial_power(real.subset(second).crops)),
        "generated_vs_real": {},
    }
    for path in args.fake:
        fake = load_image_set(path, args.fake_format, "--fake", magnification=None, pattern=pattern,
                              seed=args.seed)
        out["generated_vs_real"][path] = {"crops": len(fake.crops),
                                          **band_ratios(radial_power(fake.crops), reference)}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
