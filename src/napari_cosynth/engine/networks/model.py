"""CoSynNet: the one network that denoises an image, a distance map and a semantic map together.

The layout follows CoSyn's (see docs/engine-model.md): the three noisy maps are embedded separately
and summed (image and distance by 1x1 convolutions, label ids by an embedding then a 1x1
convolution); the centroid point map goes through its own small encoder whose features join the UNet's
input and are concatenated again before the output heads; the prompt's token states feed
cross-attention and its pooled vector is added to the timestep embedding. Heads: the image (3) and
distance (1) in the parameterisation the diffusion config chooses (epsilon or v), x0 logits for the
labels (K).

The backbone is diffusers' ``UNet2DConditionModel`` (maintained; widths, levels and attention set by
:class:`~napari_cosynth.engine.config.ModelConfig`), not a hand-written UNet. The point encoder and
the text encoder do not depend on the timestep, so :meth:`CoSynNet.encode_conditions` runs them once
per pair and the samplers reuse the resulting :class:`Conditions` at every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ...errors import CosynthError
from ..config import ModelConfig, TextConfig
from ..heavy_imports import collector_paused
from .text import TextEncoder

__all__ = ["CoSynNet", "Conditions", "ModelOutput", "PointEncoder"]


@dataclass
class Conditions:
    """Everything that stays fixed across denoising steps, for a batch of B pairs.

    Attributes
    ----------
    text_states : torch.Tensor
        (B, L, D) prompt token states (cross-attention keys and values).
    text_pooled : torch.Tensor
        (B, P) pooled prompt vector (added to the timestep embedding).
    point_features : torch.Tensor
        (B, Cp, H, W) point-map encoder features.
    """

    text_states: torch.Tensor
    text_pooled: torch.Tensor
    point_features: torch.Tensor

    def __len__(self) -> int:
        return self.text_states.shape[0]

    @classmethod
    def cat(cls, *parts: Conditions) -> Conditions:
        """Concatenate along the batch, e.g. ``Conditions.cat(cond, uncond)`` for one guided forward."""
        if not parts:
            raise ValueError("Conditions.cat needs at least one Conditions")
        return cls(
            torch.cat([p.text_states for p in parts]),
            torch.cat([p.text_pooled for p in parts]),
            torch.cat([p.point_features for p in parts]),
        )

    def to(self, device) -> Conditions:
        return Conditions(
            self.text_states.to(device), self.text_pooled.to(device), self.point_features.to(device)
        )


@dataclass
class ModelOutput:
    """Network predictions: ``pred_image`` (B,3,H,W), ``pred_distance`` (B,1,H,W) (epsilon or v, as the
    diffusion config says), ``label_logits`` (B,K,H,W) over the clean labels."""

    pred_image: torch.Tensor
    pred_distance: torch.Tensor
    label_logits: torch.Tensor


class _ResidualBlock(nn.Module):
    """conv-SiLU-conv with a skip; the second conv is dilated to widen the field cheaply."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)

    def forward(self, x):
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class PointEncoder(nn.Module):
    """Point map (B, H, W) class ids -> features (B, Cp, H, W).

    A point is one pixel, so the encoder's job is to spread each nucleus's class over its
    neighbourhood: an embedding of the class ids (CoSyn: K -> 3), a 3x3 stem, then residual blocks
    whose dilations double (1, 2, 4, ...) so that a few blocks see a nucleus-sized window. No
    normalisation: most pixels are background and per-image statistics would depend on the density.
    """

    def __init__(self, n_classes: int, embed_dim: int, channels: int, blocks: int):
        super().__init__()
        self.embed = nn.Embedding(n_classes, embed_dim)
        self.stem = nn.Conv2d(embed_dim, channels, 3, padding=1)
        self.blocks = nn.Sequential(*[_ResidualBlock(channels, 2**i) for i in range(blocks)])

    def forward(self, point_map: torch.Tensor) -> torch.Tensor:
        x = self.embed(point_map).permute(0, 3, 1, 2)
        return self.blocks(self.stem(x))


class CoSynNet(nn.Module):
    """The joint denoiser (see the module docstring).

    Parameters
    ----------
    model_cfg : ModelConfig
        UNet widths, levels, attention, embeddings and point encoder.
    text_cfg : TextConfig
        The text tower.
    n_classes : int
        K, classes including background (0).
    text_architecture : dict, optional
        A saved model's recorded text architecture (see :class:`~.text.TextEncoder`); given by the
        checkpoint loader so that a pretrained tower is rebuilt without its original weights file.

    Attributes
    ----------
    n_classes : int
        K.
    text : TextEncoder
        The text tower; ``model.text.tokenize(prompts)`` gives the tokens ``encode_conditions`` takes.
    config : ModelConfig
    text_config : TextConfig
    """

    def __init__(
        self,
        model_cfg: ModelConfig,
        text_cfg: TextConfig,
        n_classes: int,
        *,
        text_architecture: dict | None = None,
    ):
        super().__init__()
        with collector_paused():  # diffusers' UNet module imports all its UNets and transformers
            from diffusers import UNet2DConditionModel

        if not isinstance(n_classes, int) or n_classes < 2:
            raise CosynthError(f"n_classes must be an integer >= 2 (background + 1 class), got {n_classes!r}")
        self.config = model_cfg
        self.text_config = text_cfg
        self.n_classes = n_classes
        self.text = TextEncoder(text_cfg, architecture=text_architecture)

        c = model_cfg.base_channels
        cp = model_cfg.point_channels
        self.embed_image = nn.Conv2d(3, c, 1)
        self.embed_distance = nn.Conv2d(1, c, 1)
        self.embed_labels = nn.Embedding(n_classes, model_cfg.label_embed_dim)
        self.embed_labels_proj = nn.Conv2d(model_cfg.label_embed_dim, c, 1)
        self.points = PointEncoder(n_classes, model_cfg.point_embed_dim, cp, model_cfg.point_blocks)

        channels = model_cfg.channels
        n = len(channels)
        attn = set(model_cfg.attention_levels)
        self.unet = UNet2DConditionModel(
            in_channels=c + cp,
            out_channels=c,
            down_block_types=tuple(
                "CrossAttnDownBlock2D" if i in attn else "DownBlock2D" for i in range(n)
            ),
            up_block_types=tuple(
                "CrossAttnUpBlock2D" if n - 1 - i in attn else "UpBlock2D" for i in range(n)
            ),
            mid_block_type="UNetMidBlock2DCrossAttn",
            block_out_channels=channels,
            layers_per_block=model_cfg.layers_per_block,
            norm_num_groups=model_cfg.norm_num_groups,
            cross_attention_dim=self.text.states_dim,
            # diffusers' "attention_head_dim" is, for historical reasons, the number of heads.
            attention_head_dim=tuple(max(1, ch // model_cfg.attention_head_dim) for ch in channels),
            class_embed_type="projection",
            projection_class_embeddings_input_dim=self.text.pooled_dim,
        )
        # CoSyn concatenates the point features again before its final block.
        self.final = nn.Sequential(
            nn.Conv2d(c + cp, c, 3, padding=1),
            nn.GroupNorm(model_cfg.norm_num_groups, c),
            nn.SiLU(),
        )
        self.heads = nn.Conv2d(c, 3 + 1 + n_classes, 1)
        # The empty prompt that replaces dropped prompts; a buffer so it follows .to(device).
        self.register_buffer("empty_tokens", self.text.tokenize([""]), persistent=False)

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this."""
        return self.config.size_multiple

    def check_size(self, h: int, w: int) -> None:
        """Raise :class:`~napari_cosynth.errors.CosynthError` unless (h, w) is a size the UNet takes."""
        m = self.size_multiple
        if not (isinstance(h, int) and isinstance(w, int)) or h < m or w < m or h % m or w % m:
            up = [max(m, -(-int(v) // m) * m) for v in (h, w)]
            raise CosynthError(
                f"size {h}x{w} is not supported by this model: height and width must be multiples of "
                f"{m} (its UNet halves the size {len(self.config.channel_mult) - 1} times); "
                f"the nearest larger size is {up[0]}x{up[1]}"
            )

    def encode_conditions(
        self,
        point_map: torch.Tensor,
        tokens: torch.Tensor,
        drop_text: torch.Tensor | None = None,
        drop_points: torch.Tensor | None = None,
    ) -> Conditions:
        """Encode what stays fixed across denoising steps; call once per pair, not per step.

        Parameters
        ----------
        point_map : LongTensor (B, H, W)
            Class id at each nucleus centroid, 0 elsewhere.
        tokens : LongTensor (B, L)
            Prompt tokens (:meth:`TextEncoder.tokenize`).
        drop_text : BoolTensor (B,), optional
            Rows whose prompt is replaced by the empty prompt "" (classifier-free guidance).
        drop_points : BoolTensor (B,), optional
            Rows whose point map is replaced by an empty one.
        """
        if point_map.ndim != 3:
            raise ValueError(f"point_map must be (B, H, W), got {tuple(point_map.shape)}")
        if point_map.dtype != torch.long or tokens.dtype != torch.long:
            raise TypeError(
                f"point_map and tokens must be int64, got {point_map.dtype} and {tokens.dtype}"
            )
        b, h, w = point_map.shape
        if tokens.shape[0] != b:
            raise ValueError(f"{b} point maps but {tokens.shape[0]} prompts")
        self.check_size(h, w)
        if point_map.numel() and (int(point_map.min()) < 0 or int(point_map.max()) >= self.n_classes):
            raise CosynthError(
                f"point map holds class ids {int(point_map.min())}..{int(point_map.max())}, but this "
                f"model knows 0..{self.n_classes - 1}"
            )
        if drop_text is not None:
            tokens = torch.where(_rows(drop_text, b, tokens.device)[:, None], self.empty_tokens, tokens)
        if drop_points is not None:
            keep = ~_rows(drop_points, b, point_map.device)
            point_map = point_map * keep[:, None, None].long()
        states, pooled = self.text(tokens)
        return Conditions(states, pooled, self.points(point_map))

    def forward(
        self,
        x_image: torch.Tensor,
        x_distance: torch.Tensor,
        x_labels: torch.Tensor,
        t: torch.Tensor,
        cond: Conditions,
    ) -> ModelOutput:
        """Predict the noise of the image and distance and the clean labels' logits at timestep ``t``.

        Shapes: ``x_image`` (B,3,H,W), ``x_distance`` (B,1,H,W), ``x_labels`` int64 (B,H,W),
        ``t`` int64 (B,), ``cond`` for the same B and H, W.
        """
        b, _, h, w = x_image.shape
        if x_distance.shape != (b, 1, h, w) or x_labels.shape != (b, h, w):
            raise ValueError(
                f"inconsistent inputs: image {tuple(x_image.shape)}, distance "
                f"{tuple(x_distance.shape)}, labels {tuple(x_labels.shape)}"
            )
        if len(cond) != b or cond.point_features.shape[-2:] != (h, w):
            raise ValueError(
                f"conditions are for {len(cond)} pairs of "
                f"{tuple(cond.point_features.shape[-2:])} but the inputs are {b} of {(h, w)}"
            )
        t = t.reshape(-1).expand(b) if t.numel() == 1 else t
        x = (
            self.embed_image(x_image)
            + self.embed_distance(x_distance)
            + self.embed_labels_proj(self.embed_labels(x_labels).permute(0, 3, 1, 2))
        )
        x = torch.cat([x, cond.point_features.to(x.dtype)], dim=1)
        y = self.unet(
            x,
            t,
            encoder_hidden_states=cond.text_states,
            class_labels=cond.text_pooled,
        ).sample
        y = self.final(torch.cat([y, cond.point_features.to(y.dtype)], dim=1))
        out = self.heads(y)
        # Separate contiguous tensors, so callers may .view() them.
        return ModelOutput(out[:, :3].contiguous(), out[:, 3:4].contiguous(), out[:, 4:].contiguous())


def _rows(mask: torch.Tensor, b: int, device) -> torch.Tensor:
    mask = torch.as_tensor(mask, device=device)
    if mask.shape != (b,) or mask.dtype != torch.bool:
        raise ValueError(f"a drop mask must be a bool tensor of shape ({b},), got {mask.dtype} {tuple(mask.shape)}")
    return mask
