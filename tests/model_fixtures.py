"""Small real networks for engine tests (not fixtures: plain builders the tests call)."""


def small_cosynnet(n_classes: int):
    """A two-level CoSynNet with a one-layer text tower: milliseconds per forward at 16-32 px."""
    import torch

    from napari_cosynth.engine.config import ModelConfig, TextConfig
    from napari_cosynth.engine.networks.model import CoSynNet

    torch.manual_seed(0)
    model_cfg = ModelConfig(base_channels=8, channel_mult=(1, 2), attention_levels=(1,),
                            attention_head_dim=8, label_embed_dim=4, point_embed_dim=4,
                            point_channels=4, point_blocks=1, norm_num_groups=4)
    text_cfg = TextConfig(kind="small", context_length=16, width=16, layers=1, heads=2, output_dim=16)
    return CoSynNet(model_cfg, text_cfg, n_classes)


def tiny_open_clip_dir(tmp_path):
    """A local open_clip model folder (config + random safetensors weights), as open_clip's local-dir: reads."""
    import json

    import open_clip
    import torch
    from safetensors.torch import save_file

    folder = tmp_path / "tiny-clip"
    folder.mkdir()
    cfg = {
        "embed_dim": 24,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    }
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    torch.manual_seed(3)
    clip = open_clip.model.CLIP(**cfg).eval()
    save_file({k: v.contiguous().clone() for k, v in clip.state_dict().items()},
              str(folder / "open_clip_model.safetensors"))
    return folder, clip
