"""The nuclei segmentation + classification network and its files on disk.

A U-Net from segmentation-models-pytorch (a maintained implementation; nothing here is a hand-written
architecture) with ``K + 1`` output channels: ``K`` class logits (background + nucleus classes) and one
distance channel squashed by a sigmoid into [0, 1], the range of the toolkit's normalised distance map
(:func:`napari_cosynth.labels.distance.distance_map`). Sharing one decoder for both heads halves the
cost on a CPU; the two heads differ only in their last 1x1 convolution.

A saved segmenter is a folder with ``model.safetensors`` (weights only, loaded without pickle) and
``segmenter.json`` (the config, class vocabulary and magnification needed to rebuild and apply it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..atomic import atomic_path, write_text
from ..engine.finite import check_finite_weights
from ..engine.training.run_folder import complete_checkpoints
from ..engine.training.state import STATE_JSON, STATE_TENSORS
from ..errors import CheckpointError
from ..jsonio import read_document
from ..sample import Vocabulary
from .config import SegmenterConfig

WEIGHTS = "model.safetensors"
META = "segmenter.json"
# What every complete checkpoint of a segmenter run holds: a loadable segmenter and its training state.
CHECKPOINT_FILES = (WEIGHTS, META, STATE_TENSORS, STATE_JSON)
FORMAT = "napari-cosynth/segmenter"
FORMAT_VERSION = 1


class SegmenterNet(torch.nn.Module):
    """U-Net with a class head (``n_classes`` logits) and a distance head (1 channel in [0, 1]).

    Parameters
    ----------
    config : SegmenterConfig
        Encoder name, depth and decoder widths.
    n_classes : int
        K, the number of classes including background.
    """

    def __init__(self, config: SegmenterConfig, n_classes: int):
        super().__init__()
        import segmentation_models_pytorch as smp

        self.config = config
        self.n_classes = int(n_classes)
        try:
            self.unet = smp.Unet(
                encoder_name=config.encoder,
                encoder_weights=None,  # never download: the network is trained from scratch
                encoder_depth=config.encoder_depth,
                decoder_channels=tuple(config.decoder_channels),
                in_channels=3,
                classes=self.n_classes + 1,
            )
        except (KeyError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"segmentation-models-pytorch cannot build encoder {config.encoder!r} at depth "
                f"{config.encoder_depth} ({exc}); choose e.g. resnet18, resnet34 or tu-resnet10t"
            ) from None

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``image`` (B, 3, H, W) float in [0, 1], sides multiples of ``config.size_multiple``.

        Returns ``(logits (B, K, H, W), distance (B, H, W) in [0, 1])``.
        """
        out = self.unet(_centre(image))
        return out[:, : self.n_classes], torch.sigmoid(out[:, self.n_classes])

    def pooled_features(self, image: torch.Tensor) -> torch.Tensor:
        """The encoder's deepest feature map, averaged over space: (B, C) for ``image`` as above.

        Features of a network trained on real nuclei only, for Fréchet distance and KID
        (:mod:`napari_cosynth.evaluate.realism`); any side that is a multiple of the size multiple.
        """
        return self.unet.encoder(_centre(image))[-1].mean(dim=(2, 3))


def _centre(image: torch.Tensor) -> torch.Tensor:
    # Centre the [0, 1] intensities: BatchNorm copes either way, but the first layer starts better.
    return (image - 0.5) / 0.25


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) or (H, W, 3) uint8 -> (B, 3, H, W) float in [0, 1]."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2))).float() / 255.0


def save_segmenter(
    folder: str | Path, model: SegmenterNet, vocabulary: Vocabulary, magnification: float, extra: dict
) -> None:
    """Write the weights and ``segmenter.json`` into ``folder`` (created; each file atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file(weights, str(tmp), metadata={"format": FORMAT})
    from .. import __version__

    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "vocabulary": list(vocabulary.names),
        "magnification": float(magnification),
        "written_by": f"napari-cosynth {__version__}",
        **extra,
    }
    write_text(folder / META, json.dumps(meta, indent=2) + "\n")


def list_checkpoints(out_dir) -> list[Path]:
    """Complete checkpoint folders of a segmenter run, oldest first."""
    return complete_checkpoints(out_dir, CHECKPOINT_FILES)


def latest_checkpoint(out_dir) -> Path | None:
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def resolve_segmenter_dir(path: str | Path) -> Path:
    """A segmenter folder, or a training run folder (its newest checkpoint)."""
    path = Path(path)
    if (path / META).is_file():
        return path
    latest = latest_checkpoint(path) if path.is_dir() else None
    if latest is None:
        raise CheckpointError(
            f"{path}: neither a segmenter folder (with {META}) nor a training run with checkpoints; "
            "train one with 'cosynth segmenter train'"
        )
    return latest


def load_segmenter(path: str | Path, device="cpu") -> tuple[SegmenterNet, dict]:
    """Load a segmenter saved by :func:`save_segmenter` (or a run folder's newest checkpoint).

    Returns
    -------
    model, meta
        The network in eval mode on ``device``; ``meta`` holds ``vocabulary`` (a
        :class:`Vocabulary`), ``magnification``, ``config`` (a :class:`SegmenterConfig`), ``path``
        and whatever else was recorded (``step``).
    """
    folder = resolve_segmenter_dir(path)
    meta = read_document(folder / META, format=FORMAT, what="segmenter description",
                         version_key="version", version=FORMAT_VERSION)
    try:
        config = SegmenterConfig.from_dict(meta["config"], str(folder / META))
        vocabulary = Vocabulary(tuple(meta["vocabulary"]))
        magnification = float(meta["magnification"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{folder / META}: incomplete or invalid ({exc})") from None
    try:
        weights = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{folder / WEIGHTS}: cannot be read as safetensors ({exc})") from None
    check_finite_weights(weights, str(folder / WEIGHTS), "not loaded")
    # The recorded config is built on the meta device (no data) and compared with the weights first,
    # so a hand-edited one asking for a network of many GB is refused before it is allocated.
    with torch.device("meta"):
        probe = SegmenterNet(config, vocabulary.n_classes).state_dict()
    differ = sorted(set(probe) ^ set(weights)) or sorted(
        k for k in probe if tuple(probe[k].shape) != tuple(weights[k].shape))
    if differ:
        raise CheckpointError(
            f"{folder / WEIGHTS}: weights do not fit the recorded config (e.g. {differ[0]}); use the "
            f"{META} saved with these weights"
        )
    model = SegmenterNet(config, vocabulary.n_classes)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"{folder / WEIGHTS}: weights do not fit the recorded config ({exc})") from None
    model.to(device).eval()
    meta.update(config=config, vocabulary=vocabulary, magnification=magnification, path=str(folder))
    return model, meta
