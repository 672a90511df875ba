"""Multinomial (categorical) diffusion of the semantic map (Hoogeboom et al., NeurIPS 2021).

Hand-written because no maintained library implements it: diffusers and the other diffusion libraries
cover Gaussian processes only, and the reference code (ehoogeboom/multinomial_diffusion, which CoSyn
builds on through GCDP) is a research script tied to its own schedule and to one-step posteriors.

What differs from that reference, and why:

- The alpha-bar is the shared cosine one of :mod:`.schedule` (CoSyn uses the same alpha-bar for all
  three maps; Hoogeboom's code uses the square root of the Gaussian alphas).
- The posterior is q(x_s | x_t, x_0) for any s < t, with alpha_{t|s} = abar_t / abar_s, so the fast
  sampler can jump over skipped steps exactly; ``s = t - 1`` is the one-step posterior of the paper and
  ``s = -1`` is the data itself (abar = 1), which makes the t = 0 decoder the same formula.
- All randomness comes from a caller-given ``torch.Generator`` (Gumbel-max sampling).

Timesteps follow diffusers: t in 0..T-1, x_t ~ q(x_t | x_0) = Cat(abar_t x_0 + (1 - abar_t) / K).
Everything is computed on log-probabilities, shape (B, K, H, W), for numerical stability.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .schedule import NoiseSchedule, draw_uniform

# Smallest probability kept in log space: log(1e-30) ~ -69 stands for log(0) without producing -inf,
# whose arithmetic (inf - inf) would give NaN in the posterior and its gradient.
_LOG_TINY = math.log(1e-30)


def log_onehot(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Class ids (B, H, W) -> log one-hot (B, K, H, W) with log 0 clamped to ``log(1e-30)``."""
    onehot = F.one_hot(labels, n_classes).permute(0, 3, 1, 2)
    return torch.where(onehot.bool(), 0.0, _LOG_TINY).to(torch.float32)


def sample_categorical(log_probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw class ids (B, H, W) from log-probabilities (B, K, H, W) by the Gumbel-max trick.

    The uniform noise is drawn from ``generator`` on the generator's device and then moved, so the
    same seed gives the same draw whatever device the probabilities live on.
    """
    uniform = draw_uniform(log_probs.shape, generator, log_probs.device)
    gumbel = -torch.log(-torch.log(uniform + 1e-30) + 1e-30)
    return (log_probs + gumbel).argmax(dim=1)


def categorical_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) over the class axis 1: (B, K, H, W) -> (B, H, W)."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=1)


class MultinomialDiffusion:
    """Forward process, posteriors and loss of the label diffusion on a shared :class:`NoiseSchedule`.

    Parameters
    ----------
    schedule : NoiseSchedule
        Gives alpha-bar for t in -1..T-1.
    n_classes : int
        K, background included.
    """

    def __init__(self, schedule: NoiseSchedule, n_classes: int):
        if n_classes < 2:
            raise ValueError(f"multinomial diffusion needs at least 2 classes, got {n_classes}")
        self.schedule = schedule
        self.n_classes = n_classes
        self.log_k = math.log(n_classes)

    # -- schedule terms, per batch element, broadcast to (B, 1, 1, 1) ---------------------------------

    def _timesteps(self, t, batch: int, device) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.long, device=device)
        if t.dim() == 0:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise ValueError(f"timesteps must be a scalar or shape ({batch},), got {tuple(t.shape)}")
        return t

    @staticmethod
    def _log_and_log1m(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log a and log(1 - a) for a in (0, 1] (float64), as float32 (B, 1, 1, 1); log 0 -> -92."""
        log_a = torch.log(a)
        log_1m = torch.log((1.0 - a).clamp(min=1e-40))
        shape = (-1, 1, 1, 1)
        return log_a.float().view(shape), log_1m.float().view(shape)

    # -- forward process -----------------------------------------------------------------------------

    def q_log_probs(self, log_x0: torch.Tensor, t) -> torch.Tensor:
        """log q(x_t | x_0) = log(abar_t x_0 + (1 - abar_t) / K), for a probability vector ``x_0``.

        Parameters
        ----------
        log_x0 : torch.Tensor
            (B, K, H, W) log-probabilities of x_0 (log one-hot for data, log-softmax for a prediction).
        t : int or torch.Tensor
            Timestep(s) in -1..T-1, scalar or (B,).
        """
        t = self._timesteps(t, log_x0.shape[0], log_x0.device)
        log_abar, log_1m_abar = self._log_and_log1m(self.schedule.abar(t))
        return torch.logaddexp(log_x0 + log_abar, log_1m_abar - self.log_k)

    def q_sample(self, labels: torch.Tensor, t, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw x_t ~ q(x_t | x_0) for class ids ``labels`` (B, H, W); returns ids (B, H, W)."""
        return sample_categorical(self.q_log_probs(log_onehot(labels, self.n_classes), t), generator)

    # -- posteriors ----------------------------------------------------------------------------------

    def posterior_log_probs(self, log_x0: torch.Tensor, x_t: torch.Tensor, t, s) -> torch.Tensor:
        """log q(x_s | x_t, x_0) for s < t, normalised over classes.

        By Bayes' rule with the Markov chain, q(x_s | x_t, x_0) is proportional to
        q(x_t | x_s) q(x_s | x_0) = (alpha_{t|s} x_t + (1 - alpha_{t|s}) / K) * (abar_s x_0 +
        (1 - abar_s) / K) with alpha_{t|s} = abar_t / abar_s. Plugging a predicted distribution in for
        ``x_0`` gives the model posterior (Hoogeboom's x0-parameterisation).

        Parameters
        ----------
        log_x0 : torch.Tensor
            (B, K, H, W) log-probabilities of x_0.
        x_t : torch.Tensor
            (B, H, W) class ids at step t.
        t, s : int or torch.Tensor
            Timesteps with -1 <= s < t <= T-1, scalars or (B,).
        """
        b = log_x0.shape[0]
        t = self._timesteps(t, b, log_x0.device)
        s = self._timesteps(s, b, log_x0.device)
        if bool((s >= t).any()):
            raise ValueError(f"the posterior needs s < t, got t={t.tolist()}, s={s.tolist()}")
        abar_t = self.schedule.abar(t)
        abar_s = self.schedule.abar(s)
        log_a_ts, log_1m_a_ts = self._log_and_log1m(abar_t / abar_s)
        # q(x_t | x_s = k) for every k: alpha_{t|s} + (1 - alpha_{t|s}) / K where k == x_t, else the
        # uniform part only. The transition matrix is symmetric, so this reads off the row of x_t.
        at_xt = torch.logaddexp(log_a_ts, log_1m_a_ts - self.log_k)
        elsewhere = (log_1m_a_ts - self.log_k).expand(b, 1, *x_t.shape[1:])
        classes = torch.arange(self.n_classes, device=x_t.device).view(1, -1, 1, 1)
        log_likelihood = torch.where(classes == x_t.unsqueeze(1), at_xt, elsewhere)
        unnormed = log_likelihood + self.q_log_probs(log_x0, s)
        return unnormed - torch.logsumexp(unnormed, dim=1, keepdim=True)

    def model_posterior_log_probs(self, logits: torch.Tensor, x_t: torch.Tensor, t, s) -> torch.Tensor:
        """log p(x_s | x_t) = log q(x_s | x_t, x0 = softmax(logits)), logits (B, K, H, W)."""
        return self.posterior_log_probs(F.log_softmax(logits.float(), dim=1), x_t, t, s)

    # -- loss ----------------------------------------------------------------------------------------

    def loss_terms(
        self,
        labels: torch.Tensor,
        x_t: torch.Tensor,
        t: torch.Tensor,
        logits: torch.Tensor,
    ):
        """Per-sample variational term L_t, mean over pixels, in nats per pixel: shape (B,).

        For t > 0: KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)). For t = 0: the decoder NLL
        -log p(x_0 | x_t), the model posterior with s = -1 evaluated at the data.
        """
        t = self._timesteps(t, labels.shape[0], labels.device)
        log_x0 = log_onehot(labels, self.n_classes)
        s = t - 1
        log_true = self.posterior_log_probs(log_x0, x_t, t, s)
        log_model = self.model_posterior_log_probs(logits, x_t, t, s)
        kl = categorical_kl(log_true, log_model).flatten(1).mean(1)
        nll = -(log_x0.exp() * log_model).sum(dim=1).flatten(1).mean(1)
        return torch.where(t == 0, nll, kl)

    def prior_kl(self, labels: torch.Tensor) -> torch.Tensor:
        """KL(q(x_{T-1} | x_0) || uniform), mean over pixels: shape (B,). Constant in the model."""
        log_qT = self.q_log_probs(log_onehot(labels, self.n_classes), self.schedule.timesteps - 1)
        log_uniform = torch.full_like(log_qT, -self.log_k)
        return categorical_kl(log_qT, log_uniform).flatten(1).mean(1)
