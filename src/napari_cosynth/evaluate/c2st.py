"""Classifier two-sample test (C2ST): can a small CNN tell crops of set A from crops of set B?

Lopez-Paz & Oquab, "Revisiting classifier two-sample tests", ICLR 2017: train a classifier to
separate the two samples and read its held-out accuracy; 0.5 means the classifier cannot tell them
apart, 1.0 means it always can. No library ships this for images with grouped folds, so the loop is
written here; it is small on purpose. The network is fixed (four 3x3 convolutions of 8, 16, 32 and
64 channels, the first at full resolution so that blur shows, global average pooling; 24 k weights)
so that figures are comparable between runs, and trained for a few epochs with a fixed seed per
fold, so a run is deterministic on one machine.

Folds are split by *group* (an image, or a source tile): all crops of a group are held out together,
so the classifier is scored on images (or tiles) it never saw. Holding out whole tiles matters for
histopathology: each tile has its own stain, and a classifier allowed to see other crops of a test
tile recognises the tile instead of learning what separates the two sets. The score is balanced
accuracy (mean of the two recalls), so chance is 0.5 whatever each fold's class balance.
"""

from __future__ import annotations

import numpy as np

from ..errors import CosynthError

__all__ = ["C2STSettings", "c2st", "colour", "grouped_folds", "luminance"]


class C2STSettings:
    """Training settings of the two-sample classifier (defaults sized for a CPU core)."""

    def __init__(self, folds: int = 5, epochs: int = 12, batch: int = 32, lr: float = 2e-3):
        if folds < 2:
            raise CosynthError(f"--folds {folds}: a two-sample test needs at least 2 folds")
        if epochs < 1:
            raise CosynthError(f"--epochs {epochs}: the two-sample classifier needs at least 1 epoch")
        self.folds, self.epochs, self.batch, self.lr = int(folds), int(epochs), int(batch), float(lr)

    def to_dict(self) -> dict:
        return {"folds": self.folds, "epochs": self.epochs, "batch": self.batch, "lr": self.lr}


def colour(crops: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32, centred: every colour cue kept."""
    x = crops.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    return (x - 0.5) / 0.25


def luminance(crops: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 1, H, W) float32 grey, standardised per crop.

    Each crop's grey level has mean 0 and standard deviation 1, so neither hue nor brightness nor
    contrast (what a stain or a scanner changes) is left: only texture and shape.
    """
    grey = crops.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    mean = grey.mean(axis=(1, 2), keepdims=True)
    std = grey.std(axis=(1, 2), keepdims=True)
    return ((grey - mean) / np.maximum(std, 1e-3))[:, None]


def grouped_folds(labels: np.ndarray, groups: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """Held-out index arrays of ``k`` folds; every group falls in one fold, each label in every fold.

    Groups are placed largest first (ties in a seeded random order) into the fold holding the fewest
    crops of the group's majority label, which stratifies by label as well as it can. ``k`` is
    lowered to the number of groups of the rarer label when that is smaller.

    Raises
    ------
    CosynthError
        A label has fewer than 2 groups (no held-out set could be scored on it).
    """
    rng = np.random.default_rng(seed)
    names, inverse = np.unique(groups, return_inverse=True)
    per_label = [len(np.unique(inverse[labels == v])) for v in (0, 1)]
    if min(per_label) < 2:
        raise CosynthError(
            f"the two-sample test needs crops from at least 2 images (or tiles) in each set, found "
            f"{per_label[0]} and {per_label[1]}"
        )
    k = min(k, *per_label)
    order = rng.permutation(len(names))
    sizes = np.bincount(inverse, minlength=len(names))
    order = order[np.argsort(-sizes[order], kind="stable")]
    counts = np.zeros((k, 2), np.int64)
    fold_of = np.empty(len(names), np.int64)
    for g in order:
        members = labels[inverse == g]
        major = int(np.round(members.mean()))
        f = int(np.lexsort((counts.sum(1), counts[:, major]))[0])
        fold_of[g] = f
        counts[f] += np.bincount(members, minlength=2)
    folds = [np.flatnonzero(fold_of[inverse] == f) for f in range(k)]
    return [f for f in folds if len(f)]


def _net(in_channels: int):
    from torch import nn

    def block(cin, cout, pool=True):
        layers = [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
        return [*layers, nn.MaxPool2d(2)] if pool else layers

    return nn.Sequential(
        *block(in_channels, 8), *block(8, 16), *block(16, 32), *block(32, 64, pool=False),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 1),
    )


def _augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One of the 8 right-angle orientations per crop (tissue has no up or left)."""
    out = np.empty_like(x)
    turns, flips = rng.integers(4, size=len(x)), rng.integers(2, size=len(x))
    for i, (k, flip) in enumerate(zip(turns, flips, strict=True)):
        a = np.rot90(x[i], k, axes=(1, 2))
        out[i] = a[:, :, ::-1] if flip else a
    return out


def _fit_and_score(x, y, train, test, settings: C2STSettings, seed: int) -> tuple[float, float]:
    """Train on ``train``; (balanced accuracy, ROC AUC) on ``test``."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = _net(x.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    net.train()
    for _ in range(settings.epochs):
        order = rng.permutation(train)
        for start in range(0, len(order), settings.batch):
            idx = order[start:start + settings.batch]
            xb = torch.from_numpy(_augment(x[idx], rng))
            loss = loss_fn(net(xb)[:, 0], torch.from_numpy(y[idx].astype(np.float32)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        logits = np.concatenate([
            net(torch.from_numpy(x[test[s:s + 256]]))[:, 0].numpy() for s in range(0, len(test), 256)
        ])
    truth = y[test]
    pred = (logits > 0).astype(np.int64)
    recalls = [float((pred[truth == v] == v).mean()) for v in (0, 1) if (truth == v).any()]
    return float(np.mean(recalls)), _auc(logits, truth)


def _auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties averaged; 0.5 with one class only."""
    from scipy.stats import rankdata

    n1, n0 = int((truth == 1).sum()), int((truth == 0).sum())
    if not n1 or not n0:
        return 0.5
    ranks = rankdata(scores)
    return float((ranks[truth == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def c2st(x: np.ndarray, y: np.ndarray, groups: np.ndarray, settings: C2STSettings, seed: int = 0) -> dict:
    """Grouped k-fold two-sample test on prepared crops.

    Parameters
    ----------
    x : (N, C, H, W) float32
        Crops, already in the representation tested (:func:`colour` or :func:`luminance`).
    y : (N,) int
        0 for set A, 1 for set B.
    groups : (N,)
        Group of each crop (image or tile name); a group is never split between folds.
    settings : C2STSettings
    seed : int
        Seeds the fold assignment and, with the fold index, each fold's weights and batches.

    Returns
    -------
    dict
        ``accuracy`` (mean balanced held-out accuracy over folds), ``sd`` (its standard deviation
        over folds, ddof 1), ``folds`` (per-fold accuracies), ``held_out`` (the groups each fold
        held out, in the same order), ``auc`` and ``auc_sd`` (the same for
        the ROC AUC of the classifier's scores, which does not depend on where its threshold
        falls on a held-out tile), ``n_folds``, ``n_crops``.
    """
    y = np.asarray(y, np.int64)
    folds = grouped_folds(y, np.asarray(groups), settings.folds, seed)
    everything = np.arange(len(y))
    results = [_fit_and_score(x, y, np.setdiff1d(everything, test), test, settings, seed * 1000 + f)
               for f, test in enumerate(folds)]
    scores, aucs = [r[0] for r in results], [r[1] for r in results]
    return {
        "accuracy": float(np.mean(scores)),
        "sd": float(np.std(scores, ddof=1)),
        "folds": [round(s, 4) for s in scores],
        # Which images or tiles each fold held out: where the classifier can tell the sets apart.
        "held_out": [sorted({str(g) for g in np.asarray(groups)[f]}) for f in folds],
        "auc": float(np.mean(aucs)),
        "auc_sd": float(np.std(aucs, ddof=1)),
        "n_folds": len(folds),
        "n_crops": len(y),
    }
