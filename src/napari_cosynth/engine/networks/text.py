"""Prompt tokenisation and the text tower that turns tokens into cross-attention states.

Tokens always come from open_clip's CLIP BPE tokenizer (``SimpleTokenizer``; its vocabulary ships
inside the open_clip package, so nothing is downloaded). A prompt longer than the context is refused
with its token count (:class:`PromptTooLongError`) instead of open_clip's silent truncation, because a
cut prompt would silently drop the classes named at its end.

The tower is open_clip's ``TextTransformer`` in both kinds:

- ``small``: a few narrow layers trained with the UNet (the bundled model);
- ``open_clip``: a pretrained open_clip model's text tower (e.g. QuiltNet, a pathology CLIP), usually
  frozen. It is rebuilt as a stand-alone ``TextTransformer`` whose parameter names are those of the
  CLIP model, and its weights are stored in the checkpoint with the UNet's, so a checkpoint loads with
  no network and without the original weights file. :attr:`TextEncoder.architecture` records the
  open_clip model config needed to rebuild it.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from torch import nn

from ...errors import ConfigError, CosynthError
from ...jsonio import read_json
from ..config import TextConfig
from ..heavy_imports import collector_paused

__all__ = ["PromptTooLongError", "TextEncoder", "count_tokens", "tokenize"]


class PromptTooLongError(CosynthError):
    """A prompt has more tokens than the text encoder's context length."""

    def __init__(self, prompt: str, n_tokens: int, limit: int):
        self.prompt = prompt
        self.n_tokens = n_tokens
        self.limit = limit
        shown = prompt if len(prompt) <= 80 else prompt[:77] + "..."
        super().__init__(
            f"the prompt has {n_tokens} tokens but the text encoder takes at most {limit} (counting "
            f"its start and end tokens); shorten it: {shown!r}"
        )


@functools.lru_cache(maxsize=1)
def _tokenizer():
    with collector_paused():  # the first open_clip import loads the whole package and timm
        from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def _ids(prompt: str) -> list[int]:
    if not isinstance(prompt, str):
        raise CosynthError(f"a prompt must be a string, got {type(prompt).__name__} {prompt!r}")
    tok = _tokenizer()
    return [tok.sot_token_id, *tok.encode(prompt), tok.eot_token_id]


def count_tokens(prompt: str) -> int:
    """Number of tokens ``prompt`` takes, including the start and end tokens."""
    return len(_ids(prompt))


def tokenize(prompts: list[str] | str, context_length: int = 77) -> torch.Tensor:
    """Token ids (B, ``context_length``) int64, zero-padded, with open_clip's CLIP tokenizer.

    Raises
    ------
    PromptTooLongError
        If a prompt needs more than ``context_length`` tokens (never truncated).
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    out = torch.zeros(len(prompts), context_length, dtype=torch.long)
    for i, prompt in enumerate(prompts):
        ids = _ids(prompt)
        if len(ids) > context_length:
            raise PromptTooLongError(prompt, len(ids), context_length)
        out[i, : len(ids)] = torch.tensor(ids)
    return out


def _open_clip_model_cfg(name: str) -> dict:
    """The open_clip model config (``embed_dim``, ``text_cfg``, ...) of a name, schema or not."""
    import open_clip

    if name.startswith("local-dir:"):
        folder = Path(name[len("local-dir:"):]).expanduser()
        cfg_file = folder / "open_clip_config.json"
        try:
            cfg = read_json(cfg_file)["model_cfg"]
        except FileNotFoundError:
            raise ConfigError(
                f"text.open_clip_model: {cfg_file} not found; a local-dir: model is a folder with "
                "open_clip_config.json and its weights"
            ) from None
        except (KeyError, TypeError, ValueError, OSError) as e:
            raise ConfigError(f"text.open_clip_model: {cfg_file} has no valid 'model_cfg' ({e})") from None
        return cfg
    if name.startswith("hf-hub:"):
        # The user named a hub model, so a download is what they asked for.
        from open_clip.pretrained import download_pretrained_from_hf

        try:
            cfg_file = download_pretrained_from_hf(name[len("hf-hub:"):], filename="open_clip_config.json")
            return json.loads(Path(cfg_file).read_text(encoding="utf-8"))["model_cfg"]
        except (OSError, RuntimeError, ValueError, KeyError) as e:  # network, missing repo, bad JSON
            raise ConfigError(f"text.open_clip_model: cannot fetch the config of {name} ({e})") from None
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise ConfigError(
            f"text.open_clip_model: {name!r} is not an open_clip model name; see "
            "open_clip.list_models(), or use 'local-dir:/path' or 'hf-hub:org/name'"
        )
    return cfg


def _architecture(config: TextConfig) -> dict:
    """What is needed to rebuild a pretrained tower without its weights file or the network."""
    cfg = _open_clip_model_cfg(config.open_clip_model)
    text_cfg = dict(cfg.get("text_cfg", {}))
    if text_cfg.get("hf_model_name") or text_cfg.get("hf_tokenizer_name"):
        raise ConfigError(
            f"text.open_clip_model: {config.open_clip_model} has a Hugging Face text tower with its own "
            "tokenizer; only CLIP-style open_clip text towers (CLIP BPE tokenizer) are supported"
        )
    vocab = text_cfg.get("vocab_size", 49408)
    if vocab != _tokenizer().vocab_size:
        raise ConfigError(
            f"text.open_clip_model: {config.open_clip_model} has a vocabulary of {vocab} tokens, not the "
            f"{_tokenizer().vocab_size} of open_clip's CLIP tokenizer; choose a CLIP-style model"
        )
    length = text_cfg.get("context_length", 77)
    if length != config.context_length:
        raise ConfigError(
            f"text.context_length: {config.open_clip_model} was trained with a context of {length} "
            f"tokens; set text.context_length: {length}"
        )
    return {
        "open_clip_model": config.open_clip_model,
        "embed_dim": int(cfg["embed_dim"]),
        "quick_gelu": bool(cfg.get("quick_gelu", False)),
        "text_cfg": text_cfg,
    }


def check_architecture(arch) -> dict:
    """A saved model's recorded text architecture, checked to build a CLIP-style tower offline.

    The record comes from a file a user was handed, so it may only describe a plain
    ``TextTransformer``: a Hugging Face tower (``hf_model_name``) would be fetched from the network
    by transformers, and an unknown key or a wrong type would fail deep inside open_clip.
    """
    import dataclasses

    with collector_paused():
        from open_clip.model import CLIPTextCfg

    where = "text_architecture"
    if not isinstance(arch, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(arch).__name__}")
    embed_dim, text_cfg = arch.get("embed_dim"), arch.get("text_cfg")
    if isinstance(embed_dim, bool) or not isinstance(embed_dim, int) or embed_dim < 1:
        raise ConfigError(f"{where}.embed_dim: expected a positive integer, got {embed_dim!r}")
    if not isinstance(arch.get("quick_gelu", False), bool):
        raise ConfigError(f"{where}.quick_gelu: expected true or false, got {arch.get('quick_gelu')!r}")
    if not isinstance(text_cfg, dict):
        raise ConfigError(f"{where}.text_cfg: expected a mapping, got {type(text_cfg).__name__}")
    known = {f.name for f in dataclasses.fields(CLIPTextCfg)}
    unknown = sorted(str(k) for k in text_cfg if k not in known)
    if unknown:
        raise ConfigError(f"{where}.text_cfg: unknown key(s) {', '.join(unknown)}")
    remote = [k for k in ("hf_model_name", "hf_tokenizer_name") if text_cfg.get(k)]
    if remote:
        raise ConfigError(
            f"{where}.text_cfg.{remote[0]}: a Hugging Face text tower is not supported (it would be "
            "fetched from the network); a saved model holds a CLIP-style tower in its own weights"
        )
    for key in ("context_length", "vocab_size", "width", "heads", "layers"):
        value = text_cfg.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where}.text_cfg.{key}: expected a positive integer, got {value!r}")
    if text_cfg.get("vocab_size", 49408) != _tokenizer().vocab_size:
        raise ConfigError(
            f"{where}.text_cfg.vocab_size: {text_cfg.get('vocab_size')} is not the "
            f"{_tokenizer().vocab_size} tokens of open_clip's CLIP tokenizer"
        )
    return {"open_clip_model": str(arch.get("open_clip_model")), "embed_dim": embed_dim,
            "quick_gelu": bool(arch.get("quick_gelu", False)), "text_cfg": dict(text_cfg)}


def _build_open_clip_tower(arch: dict) -> nn.Module:
    from open_clip import model as oc_model
    from open_clip.transformer import TextTransformer

    # open_clip's own builder, so activation/norm choices (quick_gelu, norm_kwargs) match the model.
    try:
        tower = oc_model._build_text_tower(
            arch["embed_dim"], dict(arch["text_cfg"], output_tokens=True), arch["quick_gelu"], None
        )
    except (TypeError, ValueError, KeyError, AssertionError, RuntimeError) as err:
        raise ConfigError(
            f"text_architecture: open_clip cannot build the recorded text tower ({err})"
        ) from None
    if not isinstance(tower, TextTransformer):
        raise ConfigError(
            f"text.open_clip_model: {arch['open_clip_model']} does not have a CLIP-style text "
            "transformer; it cannot be used"
        )
    return tower


def _load_pretrained(tower: nn.Module, config: TextConfig) -> None:
    """Copy a pretrained open_clip model's text weights into ``tower`` (strict)."""
    import open_clip

    name, pretrained = config.open_clip_model, config.pretrained
    if pretrained and (Path(pretrained).suffix or "/" in pretrained) and not Path(pretrained).is_file():
        raise ConfigError(f"text.pretrained: weights file {pretrained} not found")
    try:
        full = open_clip.create_model(name, pretrained=pretrained, device="cpu", require_pretrained=True)
    except (OSError, RuntimeError, ValueError, KeyError) as e:  # open_clip uses all of these
        raise ConfigError(
            f"text.pretrained: cannot load open_clip weights for {name}"
            f"{' from ' + pretrained if pretrained else ''} ({e})"
        ) from None
    state = full.state_dict()
    if any(k.startswith("text.") for k in state):  # CustomTextCLIP keeps its tower under .text
        state = {k[len("text."):]: v for k, v in state.items() if k.startswith("text.")}
    wanted = tower.state_dict().keys()
    tower.load_state_dict({k: state[k] for k in wanted if k in state}, strict=True)


class TextEncoder(nn.Module):
    """Prompt tokens -> (token states (B, L, D), pooled vector (B, P)).

    Parameters
    ----------
    config : TextConfig
        Which tower (see the module docstring).
    architecture : dict, optional
        For ``kind: open_clip``, the recorded :attr:`architecture` of a saved model: the tower is
        built from it with random weights (the checkpoint supplies them) and nothing is read from
        ``open_clip_model`` or ``pretrained``. Without it the pretrained weights are loaded.

    Attributes
    ----------
    states_dim, pooled_dim : int
        Width of the token states (cross-attention) and of the pooled vector (time embedding).
    architecture : dict or None
        The open_clip model config of a pretrained tower; None for ``small``.
    """

    def __init__(self, config: TextConfig, *, architecture: dict | None = None):
        super().__init__()
        with collector_paused():
            from open_clip.transformer import TextTransformer

        self.config = config
        self.context_length = config.context_length
        if config.kind == "small":
            self.architecture = None
            self.tower = TextTransformer(
                context_length=config.context_length,
                vocab_size=_tokenizer().vocab_size,
                width=config.width,
                heads=config.heads,
                layers=config.layers,
                output_dim=config.output_dim,
                output_tokens=True,
            )
            self.frozen = False
        else:
            load = architecture is None
            self.architecture = _architecture(config) if load else check_architecture(architecture)
            self.tower = _build_open_clip_tower(self.architecture)
            if self.tower.context_length != config.context_length:
                raise ConfigError(
                    f"text.context_length: {config.context_length} does not match the recorded tower's "
                    f"{self.tower.context_length}"
                )
            if load:
                _load_pretrained(self.tower, config)
            self.frozen = bool(config.frozen)
            if self.frozen:
                self.tower.requires_grad_(False)
        self.states_dim = self.tower.width
        proj = self.tower.text_projection
        if proj is None:
            self.pooled_dim = self.tower.width
        elif isinstance(proj, nn.Linear):
            self.pooled_dim = proj.out_features
        else:
            self.pooled_dim = proj.shape[1]

    def tokenize(self, prompts: list[str] | str) -> torch.Tensor:
        """Token ids (B, L) for this encoder's context length; see :func:`tokenize`."""
        return tokenize(prompts, self.context_length).to(self.tower.positional_embedding.device)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode token ids (B, L) into ``(states (B, L, states_dim), pooled (B, pooled_dim))``."""
        if tokens.ndim != 2 or tokens.shape[1] != self.context_length:
            raise ValueError(
                f"tokens must be (batch, {self.context_length}), got {tuple(tokens.shape)}"
            )
        if self.frozen:
            with torch.no_grad():
                pooled, states = self.tower(tokens)
        else:
            pooled, states = self.tower(tokens)
        return states, pooled
