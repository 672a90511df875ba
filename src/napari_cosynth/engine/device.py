"""Device choice shared by the CLI and the widget: auto -> cuda, then mps, then cpu."""

from __future__ import annotations

from ..errors import CosynthError

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


def resolve_device(name: str = "auto"):
    """Return the torch.device for ``name``; a device that is not available is a clear error."""
    import torch

    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise CosynthError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise CosynthError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise CosynthError("device 'mps' was asked for but is not available; use --device cpu or auto")
    return torch.device(name)
