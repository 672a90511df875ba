"""cosynth layouts fit / sample / realism: argument parsing and printing; the work is in layouts/."""

from __future__ import annotations

import json
from pathlib import Path

from ..data.registry import FORMATS
from .console import print_result
from .flags import json_flag, output_flag

SIZES_FILE = "layouts.json"


def register(subparsers) -> None:
    """Add this module's subcommands to ``subparsers`` (an argparse sub-parser action)."""
    p = subparsers.add_parser("layouts", help="fit, sample and assess point layout models")
    sub = p.add_subparsers(dest="layouts_command", required=True)

    f = sub.add_parser("fit", help="fit a marked Strauss hard-core process to a dataset split",
                       parents=[output_flag("layout model JSON to write"), json_flag()])
    f.add_argument("--data", required=True, help="dataset folder (a training split)")
    f.add_argument("--format", required=True, choices=FORMATS)
    f.add_argument("--mag", type=float, default=None, help="resample to this magnification first")
    f.add_argument("--radius", type=float, default=None, help="interaction radius in px (default: median NN distance)")
    f.add_argument("--iterations", type=int, default=4, help="simulation rounds refining the interactions")
    f.add_argument("--seed", type=int, default=0, help="random seed of the refining simulations (default 0)")
    f.set_defaults(func=cmd_fit)

    s = sub.add_parser("sample", help="draw layouts from a fitted model as CSV point tables",
                       parents=[output_flag("folder for layout_00000.csv ..."), json_flag()])
    # Every other --model of cosynth is a diffusion model; this one is a fitted layout model.
    s.add_argument("--layout-model", "--model", dest="layout_model", required=True, metavar="FILE",
                   help="layout model JSON written by `cosynth layouts fit` (fit one first); "
                        "--model is the old spelling, kept working")
    s.add_argument("--n", type=int, required=True, help="number of layouts")
    s.add_argument("--size", type=int, nargs=2, required=True, metavar=("H", "W"),
                   help="canvas height and width of each layout in pixels")
    s.add_argument("--density", type=float, default=None, help="nuclei per px² (default: a training patch's)")
    s.add_argument("--mix", default=None, help="class shares, e.g. inflammatory=0.5,epithelial=0.5")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0): the same seed gives the "
                                                       "same layouts")
    s.set_defaults(func=cmd_sample)

    r = sub.add_parser("realism", help="compare generated layouts with real ones (NN distances, Ripley's L)",
                       parents=[json_flag()])
    r.add_argument("--real", required=True, help="dataset folder of real (held-out) layouts")
    r.add_argument("--format", required=True, choices=FORMATS)
    r.add_argument("--generated", required=True, help="folder of CSV point tables")
    r.add_argument("--mag", type=float, default=None, help="resample the real data to this magnification")
    r.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help=f"canvas of the CSVs (default: from {SIZES_FILE}, else the real data's)")
    r.set_defaults(func=cmd_realism)


def parse_mix_arg(text: str) -> dict[str, float]:
    """``"a=0.5,b=0.5"`` -> ``{"a": 0.5, "b": 0.5}``."""
    from ..errors import CosynthError

    mix = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        try:
            mix[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise CosynthError(f"--mix {text!r}: write name=share pairs separated by commas, e.g. "
                               "inflammatory=0.5,epithelial=0.5")
    return mix


def cmd_fit(args) -> int:
    from ..layouts.process import save_model
    from ..layouts.real import layouts_from_dataset
    from ..layouts.strauss_fit import fit_strauss

    layouts, vocabulary = layouts_from_dataset(args.data, args.format, magnification=args.mag)
    model = fit_strauss(layouts, vocabulary, magnification=args.mag, radius=args.radius,
                        iterations=args.iterations, rng=args.seed)
    save_model(model, args.out)
    names = vocabulary.nucleus_classes
    print_result({
        "model": str(args.out),
        "layouts": len(layouts),
        "points": model.fit_info["n_points"],
        "density_per_1e4px": 1e4 * model.density,
        "intensity_per_1e4px": {n: 1e4 * float(v) for n, v in zip(names, model.intensity)},
        "interaction_radius_px": model.radius,
    }, args.json)
    return 0


def cmd_sample(args) -> int:
    from ..atomic import write_text
    from ..data.points_csv import write_points_csv
    from ..layouts.process import load_model, sample_layouts

    model = load_model(_layout_model_file(args.layout_model))
    mix = parse_mix_arg(args.mix) if args.mix else None
    layouts = sample_layouts(model, args.n, tuple(args.size), density=args.density, mix=mix, seed=args.seed)
    out = Path(args.out)
    for layout in layouts:
        write_points_csv(layout.points, model.vocabulary, out / f"{layout.name}.csv")
    write_text(out / SIZES_FILE, json.dumps({
        "size": list(args.size), "magnification": model.magnification, "model": str(args.layout_model),
        "seed": args.seed, "density": args.density, "mix": mix, "n": args.n,
    }, indent=2) + "\n")
    n_points = sum(len(layout.points) for layout in layouts)
    print_result({"out": str(out), "layouts": len(layouts), "points": n_points}, args.json)
    return 0


def _layout_model_file(value: str) -> Path:
    """The --layout-model file; a name that is no file gets told how to make one."""
    from ..errors import CosynthError

    path = Path(value).expanduser()
    if path.is_file():
        return path
    hint = {"hardcore": " ('hardcore' is a --layouts choice of `cosynth generate-dataset`, not a fitted "
                        "layout model)",
            "default": " ('default' names the bundled diffusion model, not a layout model)"}.get(value, "")
    raise CosynthError(f"--layout-model {value}: no such file; fit a layout model first with `cosynth "
                       f"layouts fit --data DIR --format F --out {value if value.endswith('.json') else 'layouts.json'}`"
                       f"{hint}")


def cmd_realism(args) -> int:
    from ..data.points_csv import read_points_csv
    from ..errors import DatasetError
    from ..jsonio import read_json
    from ..layouts.real import Layout, layouts_from_dataset
    from ..layouts.realism import compare_layouts
    from ..limits import check_canvas

    real, vocabulary = layouts_from_dataset(args.real, args.format, magnification=args.mag)
    folder = Path(args.generated)
    if not folder.is_dir():
        raise DatasetError(folder, "no such folder of generated CSV point tables")
    size = args.size
    if size is None and (folder / SIZES_FILE).is_file():
        try:
            size = read_json(folder / SIZES_FILE)["size"]
        except (OSError, ValueError, KeyError, TypeError):
            raise DatasetError(folder / SIZES_FILE, "broken: expected {\"size\": [H, W]}; pass --size H W") from None
        size = check_canvas(size, str(folder / SIZES_FILE))
    if size is None:
        size = real[0].shape
    files = sorted(p for p in folder.glob("*.csv") if not p.name.startswith("."))
    if not files:
        raise DatasetError(folder, "holds no .csv point tables")
    generated = [Layout(read_points_csv(p, vocabulary), tuple(size), p.stem) for p in files]
    print_result(compare_layouts(real, generated, vocabulary), args.json)
    return 0
