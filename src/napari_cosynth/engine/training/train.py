"""Training the joint model: one generator function that runs on one process or many under torchrun.

``train`` checks the whole configuration against the data before the first step, then runs AdamW
steps on the joint loss with EMA weights (diffusers' ``EMAModel``), gradient clipping and, on CUDA,
bf16/fp16 autocast; it yields a :class:`TrainProgress` after every step so the CLI (or a notebook)
draws the progress bar and can stop it.

A run folder holds::

    config.yaml                      the run's configuration (resume with it)
    loss.csv                         step, losses, learning rate, seconds per step
    samples/step-0000100.png         real crops next to pairs drawn for their points (EMA weights)
    checkpoints/step-0000100/        model.safetensors (EMA weights) + config.json (loadable model)
                                     training_state.safetensors + .json (resume)
    last.json                        {"step": 100, "checkpoint": "checkpoints/step-0000100"}

Every checkpoint folder appears whole or not at all (written beside its final name, then renamed),
so a run killed at any moment loses at most the steps since its last checkpoint, and ``resume=True``
continues from the newest one exactly: the same weights, optimizer and EMA state, and the same
batches, because every random draw of a step is derived from (seed, step, rank) and every crop from
(seed, stream position) rather than carried in iterators.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import shutil
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ... import __version__
from ...atomic import atomic_path, write_text
from ...errors import CheckpointError, ConfigError, CosynthError
from .data import (
    CropDataset,
    StepBatchSampler,
    open_training_data,
    peek_vocabulary,
    staining_of,
)
from .distributed import (
    DistributedContext,
    barrier,
    init_distributed,
    mean_over_ranks,
    shutdown,
    wrap_model,
)
from ..finite import check_finite_loss
from .state import (
    load_training_state,
    resuming_from,
    rng_states,
    save_training_state,
    set_rng_states,
    step_folders,
)
from ..networks.text import tokenize as text_tokenize

CHECKPOINTS = "checkpoints"
LAST = "last.json"
LOSS_LOG = "loss.csv"
SAMPLES = "samples"
RUN_CONFIG = "config.yaml"
MIXED_PRECISION = ("no", "bf16", "fp16")
_LOSS_COLUMNS = ("step", "loss", "image", "distance", "labels", "label_ce", "grad_norm", "lr",
                 "seconds_per_step")
# Seed-derivation tags: each kind of per-step randomness gets its own stream.
_STEP_STREAM = 0x57E9
_GRID_STREAM = 0x6E1D
# Sections of the configuration that must not change when a run is resumed (what it learns).
_FROZEN_SECTIONS = ("model", "text", "diffusion", "data")
_MOVABLE_KEYS = ("data.path",)
GRID_ROWS = 4
GRID_SAMPLER_STEPS = 20


@dataclass
class TrainProgress:
    """State after a finished optimizer step.

    Attributes
    ----------
    step, total : int
        Steps done in the run (counting those before a resume) and the step it stops at.
    losses : dict
        ``total``, ``image``, ``distance``, ``labels`` (averaged over processes) and ``grad_norm``.
    seconds_per_step : float
        Wall time of this step: loading its batch, forward, backward and update.
    checkpoint : str or None
        The checkpoint folder written after this step, if any.
    samples : str or None
        The sample grid written after this step, if any.
    """

    step: int
    total: int
    losses: dict[str, float]
    seconds_per_step: float
    checkpoint: str | None = None
    samples: str | None = None
    notes: list[str] = field(default_factory=list)

    def postfix(self) -> str:
        return f"loss {self.losses.get('total', float('nan')):.4f}, {self.seconds_per_step:.2f} s/step"


# ----------------------------------------------------------------------------------------- checkpoints


def list_checkpoints(out_dir) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first (partial writes are hidden temporaries)."""
    return step_folders(out_dir, _complete)


def latest_checkpoint(out_dir) -> Path | None:
    """The newest complete checkpoint folder of a run (None when it has none)."""
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def _complete(folder: Path) -> bool:
    names = ("model.safetensors", "config.json", "training_state.safetensors", "training_state.json")
    return all((folder / n).is_file() for n in names)


def checkpoint_name(step: int) -> str:
    return f"step-{step:07d}"


# ----------------------------------------------------------------------------------------- the module


class _LossModule(torch.nn.Module):
    """Conditions + joint loss in one forward, so DistributedDataParallel sees every parameter used."""

    def __init__(self, model, diffusion):
        super().__init__()
        self.model = model
        self.diffusion = diffusion

    def forward(self, image, distance, labels, point_map, tokens, drop_text, drop_points, generator):
        cond = self.model.encode_conditions(point_map, tokens, drop_text=drop_text, drop_points=drop_points)
        return self.diffusion.training_losses(
            self.model, image, distance, labels, cond, generator=generator
        )


def _derived_seed(*words: int) -> int:
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1, np.uint64)[0] >> 1)


def _seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------------- trainer


class Trainer:
    """A configured training run; :meth:`run` is the step loop. :func:`train` wraps the two.

    Construction does everything that can fail on bad input (configuration, data, existing run
    folder, checkpoint) so that errors come before the first step. Attributes ``model`` (the bare
    CoSynNet, online weights), ``ema``, ``optimizer``, ``dataset``, ``ctx``, ``step`` are public for
    tests and tools.
    """

    def __init__(self, config, out_dir, *, resume: bool = False, steps: int | None = None, device=None,
                 init_from=None):
        self.config = config
        self.out = Path(out_dir)
        tc = config.train
        self.total = _check_train_config(tc, steps)
        self.ctx: DistributedContext = init_distributed(device)
        try:
            self._setup(resume, init_from)
        except BaseException:
            shutdown(self.ctx)
            raise

    # ---- setup

    def _setup(self, resume: bool, init_from) -> None:
        from ..diffusion.joint import JointDiffusion
        from ..networks.model import CoSynNet

        config, tc, ctx = self.config, self.config.train, self.ctx
        self.notes: list[str] = []
        existing = latest_checkpoint(self.out)
        if existing is not None and not resume:
            raise ConfigError(
                f"{self.out} already holds a training run (checkpoints up to {existing.name}); "
                "pass --resume to continue it, or choose another --out"
            )
        saved = load_training_state(existing) if (resume and existing is not None) else None
        if saved is not None:
            with resuming_from(existing):
                _check_same_run(saved["config"], config.to_dict(), self.out)
        if resume and existing is None:
            self.notes.append(f"nothing to resume in {self.out}: starting at step 0")

        vocabulary = peek_vocabulary(config.data)
        self.vocabulary = vocabulary
        # Same seed on every rank: identical initial weights (DDP also broadcasts rank 0's).
        _seed_everything(tc.seed)
        model = CoSynNet(config.model, config.text, vocabulary.n_classes)
        try:
            model.check_size(config.data.crop_size, config.data.crop_size)
        except CosynthError as err:
            raise ConfigError(f"data.crop_size: {err}") from None
        # The module-level tokenizer, not the model's method: it returns CPU tensors (safe in
        # DataLoader workers) and pickles without the model.
        tokenize = functools.partial(text_tokenize, context_length=config.text.context_length)
        self.dataset: CropDataset = open_training_data(config.data, tokenize, seed=tc.seed)
        self.data_summary = self.dataset.summary()
        self.magnification = (config.data.magnification if config.data.magnification is not None
                              else _magnification(self.data_summary))

        # Provenance of the starting weights; a resumed run reads it back from its saved state.
        self.init_from = saved.get("init_from") if saved is not None else None
        if init_from is not None and saved is None:
            # A resumed run already holds its own weights; the donor only seeds a fresh run.
            self._init_weights(model, init_from)
            self.init_from = str(init_from)
        self.device = ctx.device
        self.model = model.to(self.device)
        self.diffusion = JointDiffusion(config.diffusion, vocabulary.n_classes)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=tc.lr, weight_decay=tc.weight_decay)
        from diffusers.training_utils import EMAModel

        self.ema = EMAModel(self.params, decay=tc.ema_decay)
        use_amp = self.device.type == "cuda" and tc.mixed_precision != "no"
        if tc.mixed_precision != "no" and not use_amp:
            self.notes.append(f"train.mixed_precision {tc.mixed_precision} applies on CUDA only; "
                              f"training in float32 on {self.device.type}")
        amp_dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
        self.amp_dtype = amp_dtypes.get(tc.mixed_precision) if use_amp else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.step = 0
        self.position = 0
        if saved is not None:
            with resuming_from(existing):
                self._load(saved)
            self.notes.append(f"resumed from {existing}")
        self.module = wrap_model(_LossModule(self.model, self.diffusion), ctx)

    def _init_weights(self, model, source) -> None:
        """Start from the weights of a saved model (fine-tuning): same architecture, fresh optimiser."""
        from ..networks.checkpoint import load_model, resolve_model

        donor, _ = load_model(resolve_model(source))
        theirs, ours = donor.state_dict(), model.state_dict()
        misfit = sorted(k for k in ours if k not in theirs or theirs[k].shape != ours[k].shape)
        if misfit or donor.n_classes != model.n_classes:
            raise ConfigError(
                f"init from {source}: its architecture differs from the configured one ({len(misfit)} "
                f"tensors differ, e.g. {misfit[:2]}; {donor.n_classes} vs {model.n_classes} classes). "
                "Use that model's own model and text sections (its config.json) in the config"
            )
        model.load_state_dict({k: theirs[k].to(ours[k].dtype) for k in ours})
        self.notes.append(f"initialised from the weights of {source}")

    def _load(self, saved: dict) -> None:
        tc = self.config.train
        missing, unexpected = self.model.load_state_dict(saved["model"], strict=False)
        trainable = {n for n, p in self.model.named_parameters() if p.requires_grad}
        if unexpected or (set(missing) & trainable):
            raise CheckpointError(
                f"{self.out}: the saved weights do not fit this model (missing "
                f"{sorted(set(missing) & trainable)[:3]}, unexpected {sorted(unexpected)[:3]})"
            )
        self.optimizer.load_state_dict(saved["optimizer"])
        for group in self.optimizer.param_groups:
            # A deliberately changed learning rate or weight decay takes effect on resume.
            group["lr"], group["weight_decay"] = tc.lr, tc.weight_decay
        self.ema.load_state_dict(saved["ema"])
        self.ema.to(self.device)
        if saved.get("scaler"):
            self.scaler.load_state_dict(saved["scaler"])
        set_rng_states(saved["rng"])
        self.step = int(saved["step"])
        self.position = int(saved["data"]["position"])

    # ---- the loop

    def run(self) -> Generator[TrainProgress, None, None]:
        """Train from the current step to ``total``, yielding progress after every step."""
        ctx, tc = self.ctx, self.config.train
        try:
            if ctx.is_main:
                self._start_files()
            sampler = StepBatchSampler(
                len(self.dataset), tc.seed, self.step, self.total, self.position, tc.batch_size,
                ctx.world_size, ctx.rank, self.config.data.repeat,
            )
            loader = torch.utils.data.DataLoader(
                self.dataset, batch_sampler=sampler, num_workers=tc.num_workers,
                pin_memory=self.device.type == "cuda",
            )
            notes = list(self.notes)
            tick = time.perf_counter()
            for step_index, batch in zip(range(self.step, self.total), loader, strict=True):
                losses = self._train_step(step_index, batch)
                # Batch loading included; logging, sampling, checkpoints and the caller excluded.
                seconds = time.perf_counter() - tick
                self.step = step_index + 1
                self.position = sampler.position(self.step)
                losses = mean_over_ranks(losses, ctx)
                # Every rank sees the same mean, so all stop together; no checkpoint of NaN weights.
                check_finite_loss(losses, self.step, self.out, latest_checkpoint)
                grid = ckpt = None
                if ctx.is_main:
                    if self.step % tc.log_every == 0 or self.step == self.total:
                        self._log(losses, seconds)
                    if self.step % tc.sample_every == 0:
                        grid = str(self._sample_grid())
                if self.step % tc.checkpoint_every == 0 or self.step == self.total:
                    ckpt = self._checkpoint()
                yield TrainProgress(self.step, self.total, losses, seconds, ckpt, grid, notes)
                notes = []
                tick = time.perf_counter()
        finally:
            shutdown(ctx)

    def _train_step(self, step_index: int, batch: dict) -> dict[str, float]:
        tc, ctx = self.config.train, self.ctx
        self.model.train()
        # Everything random in this step derives from (seed, step, rank): resuming needs no iterator state.
        step_seed = _derived_seed(tc.seed, _STEP_STREAM, step_index, ctx.rank)
        _seed_everything(step_seed)
        generator = torch.Generator(device=self.device).manual_seed(step_seed)
        b = batch["labels"].shape[0]
        drop_text, drop_points = self.diffusion.condition_dropout(b, self.device, generator)
        to = {k: batch[k].to(self.device, non_blocking=True)
              for k in ("image", "distance", "labels", "point_map", "tokens")}
        autocast = (torch.autocast("cuda", dtype=self.amp_dtype) if self.amp_dtype is not None
                    else contextlib.nullcontext())
        with autocast:
            losses = self.module(to["image"], to["distance"], to["labels"], to["point_map"], to["tokens"],
                                 drop_text, drop_points, generator)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses["total"]).backward()
        self.scaler.unscale_(self.optimizer)
        max_norm = tc.grad_clip if tc.grad_clip and tc.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.ema.step(self.params)
        out = {k: float(v.detach()) for k, v in losses.items()}
        out["grad_norm"] = float(grad_norm)
        return out

    # ---- files (main process only)

    def _start_files(self) -> None:
        import yaml

        self.out.mkdir(parents=True, exist_ok=True)
        write_text(self.out / RUN_CONFIG, yaml.safe_dump(self.config.to_dict(), sort_keys=False))
        log = self.out / LOSS_LOG
        if self.step == 0 or not log.exists():
            write_text(log, ",".join(_LOSS_COLUMNS) + "\n")
        else:
            # Rows a killed run logged after its last checkpoint are redone; drop them.
            with open(log, newline="") as fh:
                rows = list(csv.reader(fh))
            kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= self.step]
            write_text(log, "".join(",".join(r) + "\n" for r in kept))
        # Hidden temporaries are checkpoints a killed run was writing; they were never complete.
        checkpoints = self.out / CHECKPOINTS
        for stale in checkpoints.glob(".step-*.tmp") if checkpoints.is_dir() else ():
            shutil.rmtree(stale, ignore_errors=True)

    def _log(self, losses: dict, seconds: float) -> None:
        keys = ("total", "image", "distance", "labels", "label_ce", "grad_norm")
        row = [self.step] + [f"{losses.get(k, float('nan')):.6g}" for k in keys]
        row += [f"{self.optimizer.param_groups[0]['lr']:.6g}", f"{seconds:.4f}"]
        with open(self.out / LOSS_LOG, "a") as fh:
            fh.write(",".join(str(v) for v in row) + "\n")
            fh.flush()

    def _checkpoint(self) -> str:
        """Write the checkpoint of the current step (main process), then wait for it on every rank."""
        final = self.out / CHECKPOINTS / checkpoint_name(self.step)
        if self.ctx.is_main and not final.exists():
            from ..networks.checkpoint import save_model

            state = {
                "step": self.step,
                "init_from": self.init_from,
                "model": self._trainable_state(),
                "optimizer": self.optimizer.state_dict(),
                "ema": self.ema.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "rng": rng_states(),
                "data": {
                    "position": self.position,
                    "seed": self.config.train.seed,
                    "global_batch": self.config.train.batch_size * self.ctx.world_size,
                    "world_size": self.ctx.world_size,
                    "samples": len(self.dataset),
                },
                "config": self.config.to_dict(),
                "version": __version__,
            }
            with atomic_path(final, overwrite=False) as tmp:
                with self._ema_weights():
                    save_model(tmp, self.model, self.config, self._model_extra())
                save_training_state(tmp, state)
            write_text(
                self.out / LAST,
                json.dumps({"step": self.step, "checkpoint": f"{CHECKPOINTS}/{final.name}"}) + "\n",
            )
        barrier(self.ctx)
        return str(final)

    def _trainable_state(self) -> dict[str, torch.Tensor]:
        # Frozen weights (a pretrained text tower) are rebuilt from the config; only what trains is stored.
        frozen = {n for n, p in self.model.named_parameters() if not p.requires_grad}
        return {n: t for n, t in self.model.state_dict().items() if n not in frozen}

    @contextlib.contextmanager
    def _ema_weights(self):
        self.ema.store(self.params)
        self.ema.copy_to(self.params)
        try:
            yield
        finally:
            self.ema.restore(self.params)

    def _model_extra(self) -> dict:
        data = self.config.data
        return {
            "vocabulary": list(self.vocabulary.names),
            "tissues": self.data_summary["tissues"] if data.tissue is None else [data.tissue],
            "staining": staining_of(data.format),
            "magnification": self.magnification,
            "patch_size": data.crop_size,
            "training_data": {"path": str(data.path), "format": data.format, **self.data_summary},
            "model_id": f"{self.out.resolve().name}/{checkpoint_name(self.step)}",
            "step": self.step,
            "init_from": self.init_from,
        }

    def _sample_grid(self) -> Path:
        from ..pipeline.generate import encode, to_images
        from ..diffusion.sampler import drain, sample

        n = min(GRID_ROWS, len(self.dataset))
        crops = [self.dataset.crop(i, np.random.default_rng([self.config.train.seed, _GRID_STREAM, i]))
                 for i in range(n)]
        batch = {k: torch.stack([c[k] for c in crops]).to(self.device) for k in ("point_map", "tokens")}
        c = self.config.data.crop_size
        generator = torch.Generator(device=self.device).manual_seed(self.config.train.seed)
        self.model.eval()
        try:
            with self._ema_weights(), torch.no_grad():
                cond, uncond = encode(self.model, batch["point_map"], batch["tokens"], 2.0)
                steps = min(GRID_SAMPLER_STEPS, self.config.diffusion.timesteps)
                out = drain(sample(self.model, cond, uncond, (n, c, c), kind="fast",
                                   steps=steps, guidance=2.0, generator=generator,
                                   schedule=self.config.diffusion))
        finally:
            self.model.train()
        images, semantics, distances = to_images(out)
        rows = []
        for i, crop in enumerate(crops):
            real_image = ((crop["image"].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
            real_sem = crop["labels"].numpy()
            real_dist = (crop["distance"][0].numpy() + 1) / 2
            rows.append(np.concatenate([
                real_image, _colour(real_sem), _grey(real_dist),
                images[i], _colour(semantics[i]), _grey(distances[i]),
            ], axis=1))
        grid = np.concatenate(rows, axis=0)
        scale = max(1, 128 // c)
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
        path = self.out / SAMPLES / f"{checkpoint_name(self.step)}.png"
        import imageio.v3 as iio

        with atomic_path(path) as tmp:
            iio.imwrite(tmp, grid, extension=".png")
        return path


# Background black, then distinct colours for up to 10 nucleus classes (matplotlib's tab10).
_PALETTE = np.array([
    [0, 0, 0], [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
    [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
], dtype=np.uint8)


def _colour(semantic: np.ndarray) -> np.ndarray:
    return _PALETTE[np.asarray(semantic) % len(_PALETTE)]


def _grey(distance: np.ndarray) -> np.ndarray:
    g = (np.clip(distance, 0, 1) * 255).round().astype(np.uint8)
    return np.repeat(g[:, :, None], 3, axis=2)


def _magnification(summary: dict) -> float:
    found = summary["magnifications"]
    if len(found) != 1:
        raise ConfigError(
            f"data.magnification: the training data mixes magnifications {found}; set "
            "data.magnification so that every sample is resampled to one"
        )
    return found[0]


def _check_train_config(tc, steps) -> int:
    # The config's own checks cover types and ranges; the --steps override and the precision
    # choice (the config names it, CUDA decides whether it applies) are checked here.
    total = tc.steps if steps is None else steps
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        key = "--steps" if steps is not None else "train.steps"
        raise ConfigError(f"{key}: a positive number of steps, got {total!r}")
    if tc.mixed_precision not in MIXED_PRECISION:
        raise ConfigError(
            f"train.mixed_precision: {tc.mixed_precision!r}; choose one of {', '.join(MIXED_PRECISION)}"
        )
    return total


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def _check_same_run(saved: dict, current: dict, out: Path) -> None:
    """Refuse to resume with a configuration that changes what the run learns."""
    old, new = _flat(saved), _flat(current)
    keys = sorted(set(old) | set(new))
    for key in keys:
        section = key.split(".")[0]
        if key in _MOVABLE_KEYS or (section not in _FROZEN_SECTIONS and key != "train.seed"):
            continue
        if old.get(key) != new.get(key):
            raise ConfigError(
                f"{key}: the run in {out} was trained with {old.get(key)!r}, this configuration has "
                f"{new.get(key)!r}; resume with the run's own configuration ({out / RUN_CONFIG}) or "
                "start a new run in another --out"
            )


def train(config, out_dir, *, resume: bool = False, steps: int | None = None, device=None,
          init_from=None) -> Generator[TrainProgress, None, None]:
    """Train (or continue training) a joint model; a generator yielding progress after every step.

    Parameters
    ----------
    config : CosynthConfig
        The run's configuration.
    out_dir : path
        The run folder (see the module docstring for its layout).
    resume : bool
        Continue from the newest complete checkpoint in ``out_dir`` (starts at step 0 if there is
        none). Without it, a folder that already holds checkpoints is refused.
    steps : int, optional
        Overrides ``train.steps``: the step count at which the run stops (counting steps done
        before a resume).
    device : str or torch.device, optional
        None or "auto": this process's CUDA GPU if there is one (then MPS, then the CPU).
    init_from : str or path, optional
        A saved model (``"default"`` or a checkpoint folder) whose weights start a new run, for
        fine-tuning on another dataset; the configured model and text sections must match it.
        Ignored when resuming a run that has checkpoints.

    Returns
    -------
    generator of TrainProgress
        The configuration and data are checked when ``train`` is called, before the first step.
        Under torchrun every process runs this; only rank 0 writes files.

    Raises
    ------
    ConfigError
        Bad values, classes that do not match the data, a crop larger than the images, a resume
        with a changed configuration, or a new run in a folder that holds one.
    """
    return Trainer(config, out_dir, resume=resume, steps=steps, device=device, init_from=init_from).run()
