"""Small real networks for engine tests (not fixtures: plain builders the tests call)."""


def small_cosynnet(n_classes: int):
    """A two-level CoSynNet with a one-layer text tower: milliseconds per forward at 16-32 px."""
    import torch

    from napari_cosynth.engine.config import ModelConfig, TextConfig
    from napari_cosynth.engine.model import CoSynNet

    torch.manual_seed(0)
    model_cfg = ModelConfig(base_channels=8, channel_mult=(1, 2), attention_levels=(1,),
                            attention_head_dim=8, label_embed_dim=4, point_embed_dim=4,
                            point_channels=4, point_blocks=1, norm_num_groups=4)
    text_cfg = TextConfig(kind="small", context_length=16, width=16, layers=1, heads=2, output_dim=16)
    return CoSynNet(model_cfg, text_cfg, n_classes)
