"""CoSynNet, its conditions and the text encoder, on a tiny config built in code (milliseconds per pass)."""

from __future__ import annotations

import pytest
import torch

from model_fixtures import tiny_open_clip_dir
from napari_cosynth.engine.config import ModelConfig, TextConfig
from napari_cosynth.engine.networks.model import Conditions, CoSynNet
from napari_cosynth.engine.networks.text import (
    PromptTooLongError,
    TextEncoder,
    count_tokens,
    tokenize,
)
from napari_cosynth.errors import ConfigError, CosynthError

K = 5
TINY_MODEL = ModelConfig(
    base_channels=8, channel_mult=(1, 2), attention_levels=(1,), attention_head_dim=8,
    label_embed_dim=4, point_embed_dim=4, point_channels=8, point_blocks=2, norm_num_groups=4,
)
TINY_TEXT = TextConfig(width=16, layers=1, heads=2, output_dim=16)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CoSynNet(TINY_MODEL, TINY_TEXT, K).eval()


def _inputs(b=2, h=32, w=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, 3, h, w, generator=g),
        torch.randn(b, 1, h, w, generator=g),
        torch.randint(0, K, (b, h, w), generator=g),
        torch.randint(0, 1000, (b,), generator=g),
    )


def _point_map(b=2, h=32, w=32):
    pm = torch.zeros(b, h, w, dtype=torch.long)
    pm[0, 4, 5] = 1
    pm[0, h - 5, 9] = 3
    pm[-1, h // 2, w // 2] = 4
    return pm


def test_output_shapes_and_dtypes(model):
    cond = model.encode_conditions(_point_map(), model.text.tokenize(["a colon tissue", ""]))
    assert cond.text_states.shape == (2, 77, model.text.states_dim)
    assert cond.text_pooled.shape == (2, model.text.pooled_dim)
    assert cond.point_features.shape == (2, TINY_MODEL.point_channels, 32, 32)
    with torch.no_grad():
        out = model(*_inputs(), cond)
    assert out.pred_image.shape == (2, 3, 32, 32)
    assert out.pred_distance.shape == (2, 1, 32, 32)
    assert out.label_logits.shape == (2, K, 32, 32)
    for t in (out.pred_image, out.pred_distance, out.label_logits):
        assert t.dtype == torch.float32 and t.is_contiguous() and torch.isfinite(t).all()
    assert model.n_classes == K and model.config == TINY_MODEL and isinstance(model.text, TextEncoder)


def test_non_square_size_and_check_size(model):
    h, w = 16, 48
    cond = model.encode_conditions(_point_map(1, h, w), model.text.tokenize(["x"]))
    with torch.no_grad():
        out = model(*_inputs(1, h, w), cond)
    assert out.label_logits.shape == (1, K, h, w)
    with pytest.raises(CosynthError, match=r"size 31x32 .*multiples of 2.*32x32"):
        model.check_size(31, 32)
    with pytest.raises(CosynthError, match="multiples of 2"):
        model.encode_conditions(_point_map(1, 31, 32), model.text.tokenize(["x"]))
    model.check_size(2, 64)


def test_attention_head_dim_is_the_size_of_a_head(model):
    # diffusers' own argument counts heads; the config's counts channels per head.
    attn = model.unet.mid_block.attentions[0].transformer_blocks[0].attn1
    assert attn.heads == TINY_MODEL.channels[-1] // TINY_MODEL.attention_head_dim


def test_conditions_are_computed_once_and_not_per_step(model):
    calls = {"points": 0, "text": 0}
    hooks = [
        model.points.register_forward_hook(lambda *a: calls.__setitem__("points", calls["points"] + 1)),
        model.text.register_forward_hook(lambda *a: calls.__setitem__("text", calls["text"] + 1)),
    ]
    try:
        cond = model.encode_conditions(_point_map(), model.text.tokenize(["a", "b"]))
        with torch.no_grad():
            for seed in range(3):
                model(*_inputs(seed=seed), cond)
    finally:
        for h in hooks:
            h.remove()
    assert calls == {"points": 1, "text": 1}


def test_conditions_cat_matches_separate_passes(model):
    tokens = model.text.tokenize(["epithelial nuclei", "inflammatory nuclei"])
    pm = _point_map()
    a = model.encode_conditions(pm[:1], tokens[:1])
    b = model.encode_conditions(pm[1:], tokens[1:])
    both = Conditions.cat(a, b)
    assert len(both) == 2
    ref = model.encode_conditions(pm, tokens)
    torch.testing.assert_close(both.point_features, ref.point_features)
    torch.testing.assert_close(both.text_pooled, ref.text_pooled)
    xi, xd, xl, t = _inputs()
    with torch.no_grad():
        joint = model(xi, xd, xl, t, both)
        first = model(xi[:1], xd[:1], xl[:1], t[:1], a)
    torch.testing.assert_close(joint.label_logits[:1], first.label_logits, atol=1e-5, rtol=1e-4)
    assert torch.equal(both.to("cpu").text_states, both.text_states)
    with pytest.raises(ValueError, match="conditions are for 2 pairs"):
        model(xi[:1], xd[:1], xl[:1], t[:1], both)


def test_drop_text_uses_the_empty_prompt_for_those_rows_only(model):
    tokens = model.text.tokenize(["epithelial nuclei", "spindle-shaped nuclei"])
    pm = _point_map()
    dropped = model.encode_conditions(pm, tokens, drop_text=torch.tensor([True, False]))
    empty = model.encode_conditions(pm, model.text.tokenize(["", "spindle-shaped nuclei"]))
    kept = model.encode_conditions(pm, tokens)
    torch.testing.assert_close(dropped.text_states, empty.text_states)
    torch.testing.assert_close(dropped.text_pooled[1], kept.text_pooled[1])
    assert not torch.allclose(dropped.text_pooled[0], kept.text_pooled[0])
    torch.testing.assert_close(dropped.point_features, kept.point_features)


def test_drop_points_empties_those_rows_point_maps(model):
    tokens = model.text.tokenize(["a", "b"])
    pm = _point_map()
    dropped = model.encode_conditions(pm, tokens, drop_points=torch.tensor([True, False]))
    kept = model.encode_conditions(pm, tokens)
    none = model.encode_conditions(torch.zeros_like(pm), tokens)
    torch.testing.assert_close(dropped.point_features[0], none.point_features[0])
    torch.testing.assert_close(dropped.point_features[1], kept.point_features[1])
    assert not torch.allclose(kept.point_features[0], none.point_features[0])
    with pytest.raises(ValueError, match="bool tensor of shape"):
        model.encode_conditions(pm, tokens, drop_points=torch.tensor([1, 0]))


def test_point_map_with_unknown_class_is_refused(model):
    pm = _point_map()
    pm[0, 0, 0] = K
    with pytest.raises(CosynthError, match=f"knows 0..{K - 1}"):
        model.encode_conditions(pm, model.text.tokenize(["a", "b"]))


def test_gradients_reach_every_trainable_part(model):
    torch.manual_seed(0)
    net = CoSynNet(TINY_MODEL, TINY_TEXT, K)
    cond = net.encode_conditions(_point_map(), net.text.tokenize(["a", "b"]))
    out = net(*_inputs(), cond)
    (out.pred_image.square().mean() + out.pred_distance.mean() + out.label_logits.logsumexp(1).mean()).backward()
    for part in (net.points, net.text, net.unet, net.embed_labels, net.heads):
        grads = [p.grad for p in part.parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), type(part).__name__


def test_prompt_too_long_reports_its_token_count():
    prompt = "cell " * 100
    n = count_tokens(prompt)
    assert n == 102  # one token per word plus start and end
    with pytest.raises(PromptTooLongError, match=rf"{n} tokens .* at most 77") as err:
        tokenize([prompt], 77)
    assert err.value.n_tokens == n and err.value.limit == 77
    assert isinstance(err.value, CosynthError)
    fits = "cell " * 75  # exactly 77 tokens: kept whole, never truncated
    ids = tokenize([fits], 77)
    assert ids.shape == (1, 77) and int((ids != 0).sum()) == 77


def test_tokenize_pads_with_zeros_and_marks_start_and_end():
    ids = tokenize(["colon", ""], 16)
    assert ids.dtype == torch.long and ids.shape == (2, 16)
    assert int((ids[1] != 0).sum()) == 2 and int((ids[0] != 0).sum()) == 3
    assert ids[0, 0] == ids[1, 0]  # start token


def test_pretrained_open_clip_tower_loads_from_a_local_folder_and_stays_frozen(tmp_path):
    folder, clip = tiny_open_clip_dir(tmp_path)
    cfg = TextConfig(kind="open_clip", open_clip_model=f"local-dir:{folder}", frozen=True)
    enc = TextEncoder(cfg)
    assert (enc.states_dim, enc.pooled_dim) == (32, 24)
    assert not any(p.requires_grad for p in enc.parameters())
    tokens = enc.tokenize(["a histopathology image of colon", ""])
    states, pooled = enc(tokens)
    with torch.no_grad():
        torch.testing.assert_close(pooled, clip.encode_text(tokens))
    assert states.shape == (2, 77, 32)
    net = CoSynNet(TINY_MODEL, cfg, K)
    assert not any(p.requires_grad for p in net.text.parameters())
    assert any(p.requires_grad for p in net.unet.parameters())
    cond = net.encode_conditions(_point_map(), tokens)
    with torch.no_grad():
        assert net(*_inputs(), cond).label_logits.shape == (2, K, 32, 32)


def test_open_clip_config_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="open_clip_config.json not found"):
        TextEncoder(TextConfig(kind="open_clip", open_clip_model=f"local-dir:{tmp_path}"))
    with pytest.raises(ConfigError, match="weights file .* not found"):
        TextEncoder(TextConfig(kind="open_clip", open_clip_model="ViT-B-32",
                               pretrained=str(tmp_path / "missing.safetensors")))
    with pytest.raises(ConfigError, match="not an open_clip model name"):
        TextEncoder(TextConfig(kind="open_clip", open_clip_model="no-such-model", pretrained="x.bin"))
    folder, _ = tiny_open_clip_dir(tmp_path)
    with pytest.raises(ConfigError, match="context of 77 tokens"):
        TextEncoder(TextConfig(kind="open_clip", open_clip_model=f"local-dir:{folder}", context_length=64))


@pytest.mark.slow
def test_built_in_open_clip_model_with_a_local_weights_file(tmp_path):
    # The smallest built-in CLIP-tokenizer model builds in well under a second; its weights are
    # written in float16 to keep the file small (open_clip casts them back on loading).
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(4)
    clip = open_clip.create_model("ViT-S-32-alt").half().float().eval()
    weights = tmp_path / "clip.safetensors"
    save_file({k: v.half().contiguous() for k, v in clip.state_dict().items()}, str(weights))
    enc = TextEncoder(TextConfig(kind="open_clip", open_clip_model="ViT-S-32-alt", pretrained=str(weights)))
    assert enc.frozen and enc.architecture["open_clip_model"] == "ViT-S-32-alt"
    tokens = enc.tokenize(["high quality histopathology colon tissue image"])
    with torch.no_grad():
        torch.testing.assert_close(enc(tokens)[1], clip.encode_text(tokens))
