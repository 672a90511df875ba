"""Sampling image, distance map and semantic map together: one API, several solvers on one loop.

Every sampler runs the same loop over a decreasing list of timesteps t_1 > ... > t_S and the same step
from t to the next timestep s (s = -1 after the last): a Gaussian solver step of :mod:`.solvers` for
image and distance, and a draw from the categorical posterior q(x_s | x_t, x0_hat) of
:mod:`.categorical` for the labels. The names (:mod:`.sampler_names`):

- ``"reference"``: every timestep T-1..0 with DDIM ``eta = 1``, which is the DDPM ancestral step
  (posterior variance) for the Gaussian part and the one-step posterior for the labels: CoSyn's sampler.
- ``"dpm++2m"``, ``"dpm++2m-sde"``, ``"unipc"``, ``"ddim"``: S << T timesteps (20 by default; spaced
  quadratically for UniPC and evenly for the others unless ``spacing`` says otherwise) with that
  solver for the Gaussian part and the exact multi-step posterior for the labels.
  ``"ddim"`` takes ``eta`` (0 = deterministic).
- ``"fast"``: DDIM, eta 0, 50 steps by default: the fast sampler of earlier versions, kept so that
  settings and pairs naming it draw what they drew.

Classifier-free guidance combines the conditional and unconditional outputs of ONE batched forward
(size 2B) as ``uncond + g (cond - uncond)`` on all three heads (the label head on its logits, as CoSyn
does). The conditions are encoded by the caller once per pair; nothing here re-encodes them.

Fixed-map sampling replaces, after every step, the known maps (inside their mask) by a forward-noised
copy at the new timestep (RePaint's replacement, Lugmayr et al. 2022), so the other maps are drawn to
agree with them; after the last step the known maps are exact. RePaint's resampling jumps are an
option (``resample``, :mod:`.repaint`), off by default.

The samplers are Python generators: they yield a :class:`SamplerStep` after every step, so a caller
shows progress and stops by not asking for the next step, and return a :class:`SampleOutput`.
All randomness comes from the caller's ``torch.Generator``.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass

import torch

from ...errors import CosynthError
from .categorical import MultinomialDiffusion, sample_categorical
from .repaint import jump_back, solver_state
from .sampler_names import SAMPLERS, check_sampler, default_spacing, default_steps
from .schedule import NoiseSchedule, draw_normal
from .solvers import make_solver

KINDS = SAMPLERS
KNOWN_KEYS = ("image", "distance", "labels", "mask")


@dataclass
class SamplerStep:
    """Progress after a step: ``step`` of ``total`` done; ``preview`` of the predicted clean maps.

    ``preview`` is None except every ``preview_every`` steps, when it holds ``"image"`` (B, 3, H, W)
    and ``"distance"`` (B, 1, H, W) x0 predictions in [-1, 1] and ``"labels"`` (B, H, W), the argmax of
    the predicted x0 logits.
    """

    step: int
    total: int
    preview: dict | None = None

    def postfix(self) -> str:
        return f"step {self.step}/{self.total}"


@dataclass
class SampleOutput:
    """A sampled batch: image (B, 3, H, W) and distance (B, 1, H, W) in [-1, 1], labels (B, H, W)."""

    image: torch.Tensor
    distance: torch.Tensor
    labels: torch.Tensor


def _as_schedule(schedule) -> NoiseSchedule:
    if schedule is None:
        return NoiseSchedule()
    if isinstance(schedule, NoiseSchedule):
        return schedule
    # A DiffusionConfig (or anything with its schedule fields).
    return NoiseSchedule(schedule.timesteps, schedule.schedule, getattr(schedule, "prediction", "epsilon"))


def _check_mask(mask, name: str, b: int, h: int, w: int, device) -> torch.Tensor | None:
    if mask is None:
        return None
    mask = torch.as_tensor(mask)
    if tuple(mask.shape) != (b, 1, h, w):
        raise CosynthError(
            f"fixed maps: {name} has shape {tuple(mask.shape)}, expected {(b, 1, h, w)} for a batch of "
            f"{b} at {h}x{w}"
        )
    if mask.dtype != torch.bool:
        raise CosynthError(f"fixed maps: {name} must be a bool tensor, got {mask.dtype}")
    return mask.to(device)


def _check_known(known: dict | None, b: int, h: int, w: int, n_classes: int, device) -> dict:
    """Validate the fixed maps; returns ``{name: (value, mask or None)}`` on ``device``, {} if none."""
    if not known:
        return {}
    unknown = sorted(set(known) - set(KNOWN_KEYS))
    if unknown:
        raise CosynthError(f"fixed maps: unknown key(s) {unknown}; use any of {list(KNOWN_KEYS)}")
    maps = {k: v for k, v in known.items() if k != "mask" and v is not None}
    if not maps:
        raise CosynthError("fixed maps: a mask was given but no image, distance or labels to hold fixed")
    masks = known.get("mask")
    if isinstance(masks, dict):
        stray = sorted(set(masks) - set(maps))
        if stray:
            raise CosynthError(f"fixed maps: 'mask' names {stray}, which are not among the fixed maps")
        masks = {k: _check_mask(masks.get(k), f"'mask'[{k!r}]", b, h, w, device) for k in maps}
    else:
        shared = _check_mask(masks, "'mask'", b, h, w, device)
        masks = dict.fromkeys(maps, shared)
    expected = {"image": (b, 3, h, w), "distance": (b, 1, h, w), "labels": (b, h, w)}
    out = {}
    for key, value in maps.items():
        value = torch.as_tensor(value)
        if tuple(value.shape) != expected[key]:
            raise CosynthError(
                f"fixed maps: {key!r} has shape {tuple(value.shape)}, expected {expected[key]} for a "
                f"batch of {b} at {h}x{w}"
            )
        if key == "labels":
            if value.dtype != torch.long:
                raise CosynthError(f"fixed maps: 'labels' must hold int64 class ids, got {value.dtype}")
            if int(value.min()) < 0 or int(value.max()) >= n_classes:
                raise CosynthError(
                    f"fixed maps: 'labels' ids span {int(value.min())}..{int(value.max())}, but this "
                    f"model knows classes 0..{n_classes - 1}"
                )
        else:
            value = value.float()
            if not bool(torch.isfinite(value).all()) or float(value.abs().max()) > 1.0 + 1e-4:
                raise CosynthError(f"fixed maps: {key!r} must be finite and lie in [-1, 1]")
        out[key] = (value.to(device), masks[key])
    return out


def _predict(model, x_image, x_distance, x_labels, t: int, cond, guidance: float):
    """Model outputs at timestep ``t``, guided when ``cond`` holds [cond; uncond] (guidance != 1)."""
    b = x_labels.shape[0]
    if guidance == 1.0:
        tt = torch.full((b,), t, dtype=torch.long, device=x_labels.device)
        out = model(x_image, x_distance, x_labels, tt, cond)
        return out.pred_image.float(), out.pred_distance.float(), out.label_logits.float()
    tt = torch.full((2 * b,), t, dtype=torch.long, device=x_labels.device)
    out = model(
        torch.cat([x_image, x_image]),
        torch.cat([x_distance, x_distance]),
        torch.cat([x_labels, x_labels]),
        tt,
        cond,
    )
    guided = []
    for head in (out.pred_image, out.pred_distance, out.label_logits):
        c, u = head.float().chunk(2)
        guided.append(u + guidance * (c - u))
    return tuple(guided)


def sample(
    model,
    cond,
    uncond,
    shape: tuple[int, int, int],
    *,
    kind: str = "fast",
    steps: int | None = None,
    guidance: float = 1.0,
    eta: float | None = None,
    spacing: str | None = None,
    generator: torch.Generator | list[torch.Generator] | None = None,
    known: dict | None = None,
    preview_every: int = 0,
    schedule=None,
    resample: int = 1,
) -> Generator[SamplerStep, None, SampleOutput]:
    """Draw a batch of (image, distance, labels) from the joint model, step by step.

    Parameters
    ----------
    model : CoSynNet
        Called as ``model(x_image, x_distance, x_labels, t, cond)``; put it in eval mode first.
    cond : Conditions
        ``model.encode_conditions(...)`` of the B pairs to draw.
    uncond : Conditions or None
        The same with the prompt dropped; needed when ``guidance != 1``.
    shape : (B, H, W)
        Batch size and size; ``model.check_size(H, W)`` is asked first.
    kind : str
        A sampler name of :data:`.sampler_names.SAMPLERS`; see the module docstring.
    steps : int, optional
        Number of steps: 20 by default for the solvers, 50 for ``"fast"``. The reference always
        takes all T timesteps (None or T).
    guidance : float
        Classifier-free guidance scale; 1 = off (CoSyn samples with 2).
    eta : float, optional
        DDIM's noise scale in [0, 1] (``"ddim"`` and ``"fast"`` only; 0 when omitted).
    spacing : str, optional
        How the steps are spread over the timesteps: ``"quadratic"`` or ``"trailing"``
        (:meth:`.schedule.NoiseSchedule.sampling_timesteps`); the sampler's
        :func:`.sampler_names.default_spacing` when omitted. Not for the reference.
    generator : torch.Generator or list of B, optional
        Every random draw comes from it: the same seed, device and settings give identical output.
        With one generator per pair, pair i's draws come from generator i only, so a pair is the same
        whichever batch it is drawn in. A fresh randomly seeded generator when omitted.
    known : dict, optional
        Maps to hold fixed: any of ``"image"`` (B, 3, H, W) and ``"distance"`` (B, 1, H, W) in
        [-1, 1], ``"labels"`` (B, H, W) int64, and ``"mask"``: where to hold them, everywhere when
        absent or None. ``"mask"`` is one (B, 1, H, W) bool tensor for all given maps, or a dict from
        map name to such a tensor or None (everywhere), e.g. ``{"image": ~region}`` with labels held
        everywhere to redraw the image inside ``region`` only.
    preview_every : int
        Attach a preview of the x0 prediction every this many steps (0 = never).
    schedule : NoiseSchedule or DiffusionConfig, optional
        The training noise schedule and prediction type; T = 1000 cosine, epsilon (the
        DiffusionConfig default) when omitted.
    resample : int
        With ``known`` maps: take every step but the last this many times, jumping back by
        q(x_t | x_s) in between (RePaint's resampling, :mod:`.repaint`); 1 = no jumps. Costs
        ``resample`` model calls per step.

    Yields
    ------
    SamplerStep
        After every step.

    Returns
    -------
    generator
        Yields :class:`SamplerStep` after every step and returns the :class:`SampleOutput` (as
        ``StopIteration.value``); ``progress.run_to_end(sample(...))`` runs it to the end. The arguments are checked
        when ``sample`` is called, before the first step.
    """
    check_sampler(kind, None, eta, spacing=spacing)
    schedule = _as_schedule(schedule)
    n_steps = default_steps(kind) if steps is None else steps
    if kind == "reference":
        if steps is not None and steps != schedule.timesteps:
            raise CosynthError(
                f"the reference sampler runs all {schedule.timesteps} timesteps; got steps={steps}. "
                f"Leave steps out, or use the fast sampler for fewer steps"
            )
        n_steps = schedule.timesteps
    timesteps = schedule.sampling_timesteps(n_steps, spacing or default_spacing(kind))
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not math.isfinite(guidance):
        raise CosynthError(f"guidance must be a finite number (1 = off), got {guidance!r}")
    if guidance < 0:
        raise CosynthError(f"guidance must be >= 0 (1 = off, CoSyn uses 2), got {guidance}")
    guidance = float(guidance)
    if guidance != 1.0 and uncond is None:
        raise CosynthError("guidance != 1 needs the unconditional conditions (uncond)")
    if not isinstance(preview_every, int) or preview_every < 0:
        raise CosynthError(f"preview_every must be an integer >= 0, got {preview_every!r}")
    if isinstance(resample, bool) or not isinstance(resample, int) or resample < 1:
        raise CosynthError(f"resample must be a whole number >= 1 (1 = no jumps), got {resample!r}")
    if resample > 1 and not known:
        raise CosynthError("resample (RePaint's jumps) applies to fixed-map sampling only; give known maps")
    if len(shape) != 3 or any(not isinstance(n, int) or n < 1 for n in shape):
        raise CosynthError(f"shape must be (batch, height, width) positive integers, got {shape!r}")
    b, h, w = shape
    model.check_size(h, w)
    if generator is None:
        generator = torch.Generator()
        generator.seed()
    elif isinstance(generator, (list, tuple)) and len(generator) != b:
        raise CosynthError(f"{len(generator)} random generators for a batch of {b} pairs; give one or {b}")

    device = next(model.parameters()).device
    n_classes = int(model.n_classes)
    labels_diff = MultinomialDiffusion(schedule, n_classes)
    known = _check_known(known, b, h, w, n_classes, device)
    # Concatenated once per call, not per step: the 2B conditions for the one batched forward.
    cond_in = cond if guidance == 1.0 else type(cond).cat(cond, uncond)
    plan = _Plan(
        model,
        cond_in,
        (b, h, w),
        n_classes,
        timesteps,
        make_solver(kind, schedule, timesteps, eta),
        guidance,
        generator,
        known,
        preview_every,
        schedule,
        labels_diff,
        device,
        resample,
    )
    return _loop(plan)


@dataclass
class _Plan:
    """Checked settings of one sampling run."""

    model: object
    cond: object  # [cond; uncond] when guided
    shape: tuple[int, int, int]
    n_classes: int
    timesteps: list[int]
    solver: object  # a .solvers solver, fresh for this run (multistep solvers keep a history)
    guidance: float
    generator: torch.Generator | list[torch.Generator]
    known: dict
    preview_every: int
    schedule: NoiseSchedule
    labels: MultinomialDiffusion
    device: torch.device
    resample: int = 1

    def replace_known(self, x_image, x_distance, x_labels, s: int):
        """RePaint replacement: known maps, forward-noised to timestep ``s`` (exact at s = -1)."""
        b = x_labels.shape[0]

        def noised(x0):
            if s < 0:
                return x0
            t = torch.full((b,), s, dtype=torch.long, device=self.device)
            return self.schedule.add_noise(x0, draw_normal(x0.shape, self.generator, self.device), t)

        def put(x, value, mask):
            return value if mask is None else torch.where(mask, value, x)

        if "image" in self.known:
            x0, mask = self.known["image"]
            x_image = put(x_image, noised(x0), mask)
        if "distance" in self.known:
            x0, mask = self.known["distance"]
            x_distance = put(x_distance, noised(x0), mask)
        if "labels" in self.known:
            x0, mask = self.known["labels"]
            value = x0 if s < 0 else self.labels.q_sample(x0, s, self.generator)
            x_labels = put(x_labels, value, None if mask is None else mask[:, 0])
        return x_image, x_distance, x_labels


@torch.no_grad()
def _loop(plan: _Plan) -> Generator[SamplerStep, None, SampleOutput]:
    # torch.no_grad on a generator function applies to each resumption only, so the caller's grad
    # mode between steps is untouched.
    (b, h, w), device, generator = plan.shape, plan.device, plan.generator
    x_image = draw_normal((b, 3, h, w), generator, device)
    x_distance = draw_normal((b, 1, h, w), generator, device)
    # q(x_{T-1} | x_0) is uniform up to abar_{T-1} (~1e-9 for the cosine schedule).
    x_labels = sample_categorical(torch.zeros((b, plan.n_classes, h, w), device=device), generator)
    x_image, x_distance, x_labels = plan.replace_known(x_image, x_distance, x_labels, plan.timesteps[0])

    total = len(plan.timesteps)
    for i, t in enumerate(plan.timesteps):
        s = plan.timesteps[i + 1] if i + 1 < total else -1
        repeats = plan.resample if s >= 0 else 1
        before = solver_state(plan.solver, plan.schedule) if repeats > 1 else None
        for u in range(repeats):
            if u:
                x_image, x_distance, x_labels = jump_back(
                    plan.schedule, plan.n_classes, x_image, x_distance, x_labels, s, t, generator)
                plan.solver = solver_state(before, plan.schedule)
            pred_image, pred_distance, logits = _predict(
                plan.model, x_image, x_distance, x_labels, t, plan.cond, plan.guidance
            )
            x_t = torch.cat([x_image, x_distance], dim=1)
            pred = torch.cat([pred_image, pred_distance], dim=1)
            x_s, x0 = plan.solver.step(x_t, pred, t, s, generator)
            x_image, x_distance = x_s[:, :3], x_s[:, 3:]
            log_post = plan.labels.model_posterior_log_probs(logits, x_labels, t, s)
            x_labels = sample_categorical(log_post, generator)
            x_image, x_distance, x_labels = plan.replace_known(x_image, x_distance, x_labels, s)
        preview = None
        if plan.preview_every and (i + 1) % plan.preview_every == 0:
            preview = {
                "image": x0[:, :3],
                "distance": x0[:, 3:],
                "labels": logits.argmax(dim=1),
            }
        yield SamplerStep(i + 1, total, preview)

    return SampleOutput(
        image=x_image.clamp(-1.0, 1.0),
        distance=x_distance.clamp(-1.0, 1.0),
        labels=x_labels,
    )
