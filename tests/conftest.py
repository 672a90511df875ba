"""Shared fixtures: a tiny random-weight model checkpoint for the napari plugin tests.

The bundled model may not be installed, and sampling it would be slow; the plugin's behaviour does
not depend on what the weights are, so the GUI tests use a few-thousand-parameter CoSynNet saved with
the engine's own ``save_model`` (a real checkpoint folder, loaded through the real loader).
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A checkpoint folder of a tiny CoSynNet with CoNSeP's classes (sizes: multiples of 4)."""
    import torch

    from napari_cosynth.engine.config import CosynthConfig
    from napari_cosynth.engine.networks.checkpoint import save_model
    from napari_cosynth.engine.networks.model import CoSynNet
    from napari_cosynth.vocabularies import CONSEP

    config = CosynthConfig.from_dict({
        "model": {"base_channels": 8, "channel_mult": [1, 2, 2], "layers_per_block": 1,
                  "attention_levels": [], "attention_head_dim": 8, "label_embed_dim": 4,
                  "point_embed_dim": 4, "point_channels": 4, "point_blocks": 1,
                  "norm_num_groups": 4},
        "text": {"kind": "small", "width": 16, "layers": 1, "heads": 2, "output_dim": 16},
        "diffusion": {"timesteps": 100},
        "data": {"path": ".", "format": "consep", "crop_size": 32, "magnification": 20.0},
    })
    torch.manual_seed(0)
    model = CoSynNet(config.model, config.text, CONSEP.n_classes)
    path = tmp_path_factory.mktemp("models") / "tiny"
    return save_model(path, model, config, {"classes": list(CONSEP.names), "tissues": ["colon"],
                                            "model_id": "tiny-test"})
