"""The joint diffusion of image, distance map and semantic map: the training loss of the CoSyn model.

One timestep t per pair is shared by the three maps (they are denoised together by one network).
Image and distance follow the Gaussian process of :mod:`.schedule` with an MSE on the heads' target
(epsilon as in CoSyn, or v); the labels follow the multinomial process of :mod:`.categorical` with its
variational loss, plus optionally a cross-entropy on the predicted clean labels (D3PM's hybrid loss).
The total is ``w_image L_image + w_distance L_distance + w_labels L_labels + w_ce L_ce`` (CoSyn's
code: 9, 1, 3 and no cross-entropy), each term optionally P2-weighted per sample (Choi et al. 2022;
CoSyn uses gamma 0.5 on all three).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from .categorical import MultinomialDiffusion
from .schedule import NoiseSchedule, draw_normal, draw_uniform

LOSS_TERMS = ("image", "distance", "labels", "label_ce")


class JointDiffusion:
    """Training-side joint diffusion: forward noising of the three maps and the weighted loss.

    Parameters
    ----------
    config : DiffusionConfig
        Uses ``timesteps``, ``schedule``, ``prediction``, ``loss_weights``, ``label_ce_weight``,
        ``p2_gamma``, ``p2_k``, ``drop_text`` and ``drop_points``; their ranges are checked by the
        config itself.
    n_classes : int
        K, background included.
    """

    def __init__(self, config, n_classes: int):
        self.config = config
        self.n_classes = int(n_classes)
        self.schedule = NoiseSchedule(config.timesteps, config.schedule, config.prediction)
        self.labels = MultinomialDiffusion(self.schedule, self.n_classes)
        self.weights = {name: float(getattr(config.loss_weights, name)) for name in LOSS_TERMS[:3]}
        self.weights["label_ce"] = float(config.label_ce_weight)

    @property
    def timesteps(self) -> int:
        return self.schedule.timesteps

    def label_bound(
        self,
        labels: torch.Tensor,
        x_labels: torch.Tensor,
        t: torch.Tensor,
        logits: torch.Tensor,
    ) -> torch.Tensor:
        """Per-sample label loss (B,): ``(T * L_t + L_prior) / (K ln 2)``, L in nats per pixel.

        ``T * L_t`` (t uniform) is the single-sample estimate of the sum of the bound's T terms, as in
        Hoogeboom's ``kl / pt``; dividing by ``K ln 2`` gives bits per class channel per pixel. This is
        the scale of CoSyn's code (GCDP's ``MultinomialDiffusion.loss_fn``), for which its loss
        weights 9 / 1 / 3 were chosen.
        """
        bound = self.timesteps * self.labels.loss_terms(labels, x_labels, t, logits)
        bound = bound + self.labels.prior_kl(labels)
        return bound / (self.n_classes * math.log(2.0))

    def condition_dropout(
        self, batch: int, device=None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Which rows drop their prompt / point map for classifier-free guidance training.

        Returns
        -------
        (drop_text, drop_points) : tuple of torch.BoolTensor (batch,)
            For ``CoSynNet.encode_conditions(..., drop_text=, drop_points=)``.
        """
        u = draw_uniform((2, batch), generator, device)
        return u[0] < self.config.drop_text, u[1] < self.config.drop_points

    def training_losses(
        self,
        model,
        image: torch.Tensor,
        distance: torch.Tensor,
        labels: torch.Tensor,
        cond,
        t: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """The loss of one batch of clean pairs.

        Parameters
        ----------
        model : CoSynNet
            Called once as ``model(x_image, x_distance, x_labels, t, cond)``.
        image : torch.Tensor
            (B, 3, H, W) in [-1, 1].
        distance : torch.Tensor
            (B, 1, H, W) in [-1, 1].
        labels : torch.LongTensor
            (B, H, W) class ids in 0..K-1.
        cond : Conditions
            From ``model.encode_conditions`` (with condition dropout already applied).
        t : torch.LongTensor, optional
            (B,) timesteps; drawn uniformly from 0..T-1 when omitted.
        generator : torch.Generator, optional
            Source of t, the Gaussian noise and the label noise (global RNG when omitted).

        Returns
        -------
        dict
            ``total`` (the scalar to backpropagate) and the P2-weighted batch means, before the loss weights,
            ``image``, ``distance``, ``labels`` (see :meth:`label_bound` for the labels' scale) and
            ``label_ce`` (nats per pixel; in the total only when ``label_ce_weight > 0``).
        """
        b, h, w = labels.shape
        device = image.device
        if image.shape != (b, 3, h, w) or distance.shape != (b, 1, h, w):
            raise ValueError(
                f"expected image (B,3,H,W), distance (B,1,H,W), labels (B,H,W) of one size; got "
                f"{tuple(image.shape)}, {tuple(distance.shape)}, {tuple(labels.shape)}"
            )
        if labels.dtype != torch.long:
            raise ValueError(f"labels must be int64 class ids, got {labels.dtype}")
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= self.n_classes:
            raise ValueError(
                f"label ids must lie in 0..{self.n_classes - 1} for a {self.n_classes}-class model, "
                f"found {lo}..{hi}"
            )
        if t is None:
            if generator is None:
                t = torch.randint(0, self.timesteps, (b,), device=device)
            else:
                t = torch.randint(
                    0,
                    self.timesteps,
                    (b,),
                    generator=generator,
                    device=generator.device,
                )
        t = t.to(device=device, dtype=torch.long)

        noise_image = draw_normal(image.shape, generator, device)
        noise_distance = draw_normal(distance.shape, generator, device)
        x_image = self.schedule.add_noise(image, noise_image, t)
        x_distance = self.schedule.add_noise(distance, noise_distance, t)
        x_labels = self.labels.q_sample(labels, t, generator)

        out = model(x_image, x_distance, x_labels, t, cond)

        target_image = self.schedule.target(image, noise_image, t)
        target_distance = self.schedule.target(distance, noise_distance, t)
        per_sample = {
            "image": ((out.pred_image.float() - target_image) ** 2).flatten(1).mean(1),
            "distance": ((out.pred_distance.float() - target_distance) ** 2).flatten(1).mean(1),
            "labels": self.label_bound(labels, x_labels, t, out.label_logits),
            "label_ce": F.cross_entropy(out.label_logits.float(), labels, reduction="none").flatten(1).mean(1),
        }
        p2 = self.schedule.p2_weight(t, self.config.p2_gamma, self.config.p2_k).to(device)
        losses = {name: (p2 * value).mean() for name, value in per_sample.items()}
        losses["total"] = sum(self.weights[name] * losses[name] for name in LOSS_TERMS)
        return losses
