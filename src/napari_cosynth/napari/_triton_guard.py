"""Keep triton out of a napari process, where it crashes once the viewer's OpenGL is up.

Loading the engine imports diffusers, which imports ``torch._dynamo``, which imports triton when it is
installed (it comes with CUDA builds of torch). triton's native library carries its own LLVM, and
loading it after Mesa's LLVM-based OpenGL drivers (llvmpipe under Xvfb, on VMs and machines without a
GPU driver; radeonsi) segfaults the process: a viewer, then ``import triton`` crashes, while the other
order works (measured here with torch 2.14.1, triton's wheel, Mesa llvmpipe). The plugin loads models
after the viewer exists, so on such a machine the first `generate` killed napari.

The engine never uses triton (it runs no ``torch.compile`` and no triton kernels), so in a napari
process the plugin marks it as absent before anything imports it: torch then sees no triton package
and carries on. A process that already imported triton keeps it. ``COSYNTH_ALLOW_TRITON=1`` turns
this off (e.g. for another plugin that compiles kernels, on a machine whose OpenGL does not use LLVM).
"""

from __future__ import annotations

import os
import sys

ENV_ALLOW = "COSYNTH_ALLOW_TRITON"


def keep_triton_out() -> bool:
    """Mark triton as not importable in this process unless it is loaded already; True if marked."""
    if os.environ.get(ENV_ALLOW, "").strip() not in ("", "0"):
        return False
    if "triton" in sys.modules:
        return sys.modules["triton"] is None
    # A None entry makes `import triton` raise ImportError, which torch's has_triton_package catches.
    sys.modules["triton"] = None
    return True
