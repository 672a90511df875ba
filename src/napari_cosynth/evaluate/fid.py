"""FID and Inception Score of generated images against real ones, through torchmetrics.

torchmetrics computes both; what this module adds is choosing the features without ever touching the
network. Inception-v3 (torch-fidelity's port of the TF-FID weights) is used only when its weights file
is already on disk, in torch hub's cache or given as a path, and passed to torchmetrics by path so
that nothing is downloaded; otherwise the command stops at once with a message saying how to provide
the file. ``small`` is a fixed random convolutional net (seed 0): its FID is only comparable with other
``small`` FIDs, but it needs no file, which is what tests and offline smoke checks use. The Inception
Score needs Inception's class logits, so it is reported only with Inception features.

torch-fidelity reads the weights with ``torch.load(weights_only=False)``, i.e. it unpickles them, and
unpickling runs whatever code the file names. So the file a user names is never handed to it: only
the published weights file (recognised by its SHA-256) or a ``.safetensors`` file (data only) is
accepted, and torch-fidelity gets a private copy written here from checked bytes or plain tensors.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import CosynthError

__all__ = ["INCEPTION_SHA256", "INCEPTION_WEIGHTS_FILE", "SmallFeatures", "fid_report", "inception_weights_path"]

# The file torch-fidelity downloads (URL_INCEPTION_V3); torch hub caches it under this name.
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_WEIGHTS_FILE
)
# SHA-256 of that file (95,628,359 bytes); torch hub names files after its first 8 hex digits.
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
_HOW_TO = (
    f"download {INCEPTION_URL} on a machine with internet and pass its path as --features PATH "
    "(or place it in torch hub's cache, {cache}); or use --features small for a file-free "
    "(not Inception-comparable) FID"
)


def _small_net():
    import torch
    from torch import nn

    class _Small(nn.Module):
        """Three strided random convolutions, mean- and std-pooled: 64 features per image."""

        num_features = 64

        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(0)
            self.convs = nn.ModuleList()
            for cin, cout in ((3, 16), (16, 32), (32, 32)):
                conv = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
                with torch.no_grad():
                    conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) / (cin * 9) ** 0.5)
                    conv.bias.zero_()
                self.convs.append(conv)
            self.requires_grad_(False)
            self.eval()

        def forward(self, x):
            # torchmetrics hands over uint8 (normalize=False); any image size works.
            x = x.float() / 127.5 - 1.0
            for conv in self.convs:
                x = torch.relu(conv(x))
            return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1).double()

    return _Small()


class SmallFeatures:
    """Builder of the ``small`` feature extractor (a torch module; see the module docstring)."""

    name = "small (fixed random conv net, seed 0; not comparable with Inception FID)"

    @staticmethod
    def build():
        return _small_net()


def inception_weights_path(features: str) -> Path:
    """Path of the Inception-v3 weights for ``--features inception`` or ``--features PATH``, checked.

    A ``.safetensors`` file must be readable as one; any other file must be the published weights
    file, byte for byte (its SHA-256 is :data:`INCEPTION_SHA256`), because torch-fidelity unpickles it.

    Raises
    ------
    CosynthError
        torch-fidelity is not installed, the file is absent (no download is attempted), or it is
        neither the published weights nor a safetensors file.
    """
    import torch

    cache = Path(torch.hub.get_dir()) / "checkpoints"
    if features == "inception":
        path = cache / INCEPTION_WEIGHTS_FILE
        if not path.is_file():
            raise CosynthError(
                f"Inception-v3 weights are not cached ({path} is missing) and nothing is downloaded: "
                + _HOW_TO.format(cache=cache)
            )
    else:
        path = Path(features).expanduser()
        if not path.is_file():
            raise CosynthError(
                f"--features {features}: no such weights file; give 'inception', 'small' or the path "
                "of the Inception-v3 weights file"
            )
    if _is_safetensors(path):
        _safetensors_state(path)  # refuses a file that is not one
    elif _sha256(path) != INCEPTION_SHA256:
        raise CosynthError(_not_trusted(path))
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        raise CosynthError(
            "Inception features need torch-fidelity: `pip install torch-fidelity` (or "
            "`pip install torchmetrics[image]`), or use --features small"
        ) from None
    return path


def _not_trusted(path: Path) -> str:
    return (
        f"--features {path}: not the published Inception-v3 weights file (its SHA-256 is not "
        f"{INCEPTION_SHA256}) and not a .safetensors file. A .pth file is a pickle that can run code "
        f"when loaded, so only that exact file ({INCEPTION_URL}) or the same weights saved as "
        ".safetensors are accepted"
    )


def _sha256(path: Path, copy_to: Path | None = None) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as src, (open(copy_to, "wb") if copy_to else contextlib.nullcontext()) as dst:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            h.update(chunk)
            if dst is not None:
                dst.write(chunk)
    return h.hexdigest()


def _is_safetensors(path: Path) -> bool:
    return path.suffix.lower() == ".safetensors"


def _safetensors_state(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CosynthError(f"--features {path}: not a readable safetensors file ({err})") from None


@contextlib.contextmanager
def _private_weights(path: Path) -> Iterator[str]:
    """A file torch-fidelity may unpickle: written here, in a private folder, from checked content.

    The published file is copied while its hash is computed again (so a file swapped after the
    check is caught); a safetensors file's tensors are saved with ``torch.save``, which pickles
    nothing but tensors.
    """
    import torch

    with tempfile.TemporaryDirectory(prefix="cosynth-inception-") as folder:
        private = Path(folder) / INCEPTION_WEIGHTS_FILE
        if _is_safetensors(path):
            torch.save(_safetensors_state(path), private)
        elif _sha256(path, copy_to=private) != INCEPTION_SHA256:
            raise CosynthError(_not_trusted(path))
        yield str(private)


def _images(path, format: str, which: str, magnification: float | None) -> Iterator[np.ndarray]:
    from ..data.registry import open_dataset

    dataset = open_dataset(path, format, magnification=magnification)
    if len(dataset) < 2:
        raise CosynthError(f"{path}: FID needs at least 2 {which} images, found {len(dataset)}")
    for sample in dataset:
        if sample.image is None:
            raise CosynthError(f"{path}: sample {sample.name} has no image; FID compares images")
        yield sample.image


def _update(metric, images: Iterator[np.ndarray], **kwargs) -> int:
    """Feed images to a torchmetrics metric in batches of equal size; return how many."""
    import torch

    batch: list[np.ndarray] = []
    n = 0

    def flush():
        if batch:
            x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).contiguous()
            metric.update(x, **kwargs)
            batch.clear()

    for image in images:
        if batch and (image.shape != batch[0].shape or len(batch) == 32):
            flush()
        batch.append(image)
        n += 1
    flush()
    return n


def fid_report(real, real_format: str, fake, fake_format: str = "folder", *,
               features: str = "inception", magnification: float | None = None) -> dict:
    """FID (and IS with Inception) of the images of ``fake`` against those of ``real``.

    Parameters
    ----------
    real, fake : path-like
        Datasets, read with the named formats (each needs at least 2 images; sizes may differ).
    features : {"inception", "small"} or path
        ``inception``: Inception-v3 weights from torch hub's cache; a path: that weights file;
        ``small``: the fixed random net (:class:`SmallFeatures`).
    magnification : float, optional
        Resample both sets to this magnification first (e.g. 20 to compare 40x real patches with a
        20x model's pairs); texture statistics depend on the scale. None: as read.

    Returns
    -------
    dict
        ``fid``, ``inception_score`` (mean, std; or the string ``"not available"`` with other
        features), ``features`` (which were used), ``n_real``, ``n_fake``.
    """
    if features == "small":
        return _fid_report(real, real_format, fake, fake_format, None, magnification)
    weights = inception_weights_path(features)
    with _private_weights(weights) as private:
        return _fid_report(real, real_format, fake, fake_format, (weights, private), magnification)


def _inception(source: Path, build):
    """``build()`` a torch-fidelity Inception module; a file of other tensors is refused in one line."""
    try:
        return build()
    except RuntimeError as err:
        # torch-fidelity's strict load_state_dict: a safetensors file of other tensors.
        raise CosynthError(
            f"--features {source}: does not hold torch-fidelity's Inception-v3 weights "
            f"({str(err).splitlines()[0]})"
        ) from None


def _fid_report(real, real_format, fake, fake_format, inception, magnification) -> dict:
    """``inception``: None for the small net, else (the user's file, the private copy to load)."""
    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance

    weights = inception[1] if inception is not None else None
    if inception is None:
        extractor, used = SmallFeatures.build(), SmallFeatures.name
    else:
        extractor, used = None, f"inception-v3 2048-d pool features ({inception[0]})"
    torch.manual_seed(0)
    if extractor is not None:
        fid = FrechetInceptionDistance(feature=extractor, reset_real_features=True)
    else:
        fid = _inception(inception[0], lambda: FrechetInceptionDistance(
            feature=2048, feature_extractor_weights_path=weights))
    n_real = _update(fid, _images(real, real_format, "real", magnification), real=True)
    n_fake = _update(fid, _images(fake, fake_format, "generated", magnification), real=False)
    result = {
        "measurement": "fid",
        "real": str(real),
        "fake": str(fake),
        "features": used,
        "magnification": magnification,
        "n_real": n_real,
        "n_fake": n_fake,
        # The eigenvalue form of the trace term can round a hair below zero for identical sets.
        "fid": max(float(fid.compute()), 0.0),
        "inception_score": "not available (needs Inception-v3 features)",
    }
    if weights is not None:
        from torchmetrics.image.fid import NoTrainInceptionV3
        from torchmetrics.image.inception import InceptionScore

        net = _inception(inception[0], lambda: NoTrainInceptionV3(
            name="inception-v3-compat", features_list=["logits_unbiased"],
            feature_extractor_weights_path=weights))
        score = InceptionScore(feature=net, splits=min(10, n_fake))
        _update(score, _images(fake, fake_format, "generated", magnification))
        mean, std = score.compute()
        result["inception_score"] = {"mean": float(mean), "std": float(std)}
    return result
