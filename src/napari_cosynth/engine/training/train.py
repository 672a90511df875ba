"""Training the joint model: one generator function that runs on one process or many under torchrun.

``train`` checks the whole configuration against the data before the first step, then runs AdamW
steps on the joint loss with EMA weights (diffusers' ``EMAModel``), gradient clipping and, on CUDA,
bf16/fp16 autocast; it yields a :class:`TrainProgress` after every step so the CLI (or a notebook)
draws the progress bar and can stop it.

A run folder (the rules shared with the segmenter's trainer are in :mod:`.run_folder`) holds::

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
import functools
import random
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ... import __version__
from ...errors import ConfigError, CosynthError
from ..finite import check_finite_loss
from ..networks.text import tokenize as text_tokenize
from .crop_stream import StepBatchSampler
from .data import CropDataset, open_training_data, peek_vocabulary, staining_of
from .distributed import DistributedContext, barrier, init_distributed, mean_over_ranks, shutdown, wrap_model
from .restore import init_weights_from, restore_training_state
from .run_checks import check_same_run, check_train_config, magnification_of
from .run_folder import RunFolder, checkpoint_name, resuming_from
from .sample_grid import write_sample_grid
from .state import STATE_JSON, STATE_TENSORS, load_training_state, rng_states, save_training_state

SAMPLES = "samples"
RUN_CONFIG = "config.yaml"
# What every complete checkpoint of a joint-model run holds: a loadable model and the training state.
CHECKPOINT_FILES = ("model.safetensors", "config.json", STATE_TENSORS, STATE_JSON)
LOSS_COLUMNS = ("step", "loss", "image", "distance", "labels", "label_ce", "grad_norm", "lr",
                "seconds_per_step")
_LOGGED_LOSSES = ("total", "image", "distance", "labels", "label_ce", "grad_norm")
# Seed-derivation tag: the per-step randomness gets its own stream.
_STEP_STREAM = 0x57E9


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


def run_folder(out_dir) -> RunFolder:
    """The joint model's view of the run folder ``out_dir``."""
    return RunFolder(Path(out_dir), "training run", CHECKPOINT_FILES, LOSS_COLUMNS, RUN_CONFIG)


def list_checkpoints(out_dir) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first (partial writes are hidden temporaries)."""
    return run_folder(out_dir).checkpoints()


def latest_checkpoint(out_dir) -> Path | None:
    """The newest complete checkpoint folder of a run (None when it has none)."""
    return run_folder(out_dir).latest()


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
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """A configured training run; :meth:`run` is the step loop. :func:`train` wraps the two.

    Construction does everything that can fail on bad input (configuration, data, existing run
    folder, checkpoint) so that errors come before the first step. Attributes ``model`` (the bare
    CoSynNet, online weights), ``ema``, ``optimizer``, ``dataset``, ``ctx``, ``step`` are public for
    tests and tools.
    """

    def __init__(self, config, out_dir, *, resume: bool = False, steps: int | None = None, device=None,
                 init_from=None):
        self.out = Path(out_dir)
        self.folder = run_folder(self.out)
        self.total = check_train_config(config.train, steps)
        # The run's record and its learning-rate schedule span the steps it is asked to run.
        self.config = config if self.total == config.train.steps else config.with_overrides(
            {"train.steps": self.total})
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
        existing = self.folder.to_resume(resume)
        saved = load_training_state(existing) if existing is not None else None
        if saved is not None:
            with resuming_from(existing):
                check_same_run(saved["config"], config.to_dict(), self.out, self.folder.record_path)
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
                              else magnification_of(self.data_summary))

        # Provenance of the starting weights; a resumed run reads it back from its saved state.
        self.init_from = saved.get("init_from") if saved is not None else None
        if init_from is not None and saved is None:
            # A resumed run already holds its own weights; the donor only seeds a fresh run.
            init_weights_from(model, init_from)
            self.notes.append(f"initialised from the weights of {init_from}")
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
                self.step, self.position = restore_training_state(
                    saved, model=self.model, optimizer=self.optimizer, ema=self.ema, scaler=self.scaler,
                    train_config=tc, device=self.device, where=self.out)
            self.notes.append(f"resumed from {existing}")
        self.module = wrap_model(_LossModule(self.model, self.diffusion), ctx)

    # ---- the loop

    def run(self) -> Generator[TrainProgress, None, None]:
        """Train from the current step to ``total``, yielding progress after every step."""
        ctx, tc = self.ctx, self.config.train
        try:
            if ctx.is_main:
                import yaml

                self.folder.write_record(yaml.safe_dump(self.config.to_dict(), sort_keys=False))
                self.folder.start(self.step)
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
                        values = [losses.get(k, float("nan")) for k in _LOGGED_LOSSES]
                        self.folder.log(self.step, [*values, self.optimizer.param_groups[0]["lr"]], seconds)
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
        for group in self.optimizer.param_groups:
            group["lr"] = tc.learning_rate(step_index)
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

    # ---- checkpoints and sample grids (main process only)

    def _checkpoint(self) -> str:
        """Write the checkpoint of the current step (main process), then wait for it on every rank."""
        if self.ctx.is_main:
            self.folder.write_checkpoint(self.step, self._write_checkpoint)
        barrier(self.ctx)
        return str(self.folder.checkpoint_path(self.step))

    def _write_checkpoint(self, folder: Path) -> None:
        from ..networks.checkpoint import save_model

        tc = self.config.train
        # Frozen weights (a pretrained text tower) are rebuilt from the config; only what trains is stored.
        frozen = {n for n, p in self.model.named_parameters() if not p.requires_grad}
        state = {
            "step": self.step,
            "init_from": self.init_from,
            "model": {n: t for n, t in self.model.state_dict().items() if n not in frozen},
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "rng": rng_states(),
            "data": {
                "position": self.position,
                "seed": tc.seed,
                "global_batch": tc.batch_size * self.ctx.world_size,
                "world_size": self.ctx.world_size,
                "samples": len(self.dataset),
            },
            "config": self.config.to_dict(),
            "version": __version__,
        }
        with self._ema_weights():
            save_model(folder, self.model, self.config, self._model_extra())
        save_training_state(folder, state)

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
        path = self.out / SAMPLES / f"{checkpoint_name(self.step)}.png"
        with self._ema_weights():
            return write_sample_grid(path, self.model, self.dataset, self.config, self.device)


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
