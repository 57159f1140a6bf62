"""Encoders, fusion modules and the authors' init (tiny inputs; runs in seconds on one core)."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from g2d.errors import ConfigError
from g2d.models import (
    available_encoders,
    available_fusions,
    build_encoder,
    build_fusion,
    init_weights,
)

C = 5
B = 4
DIMS = [32, 48, 24]
FUSIONS = ["late", "sum", "concat", "film", "bigated", "cross_attention"]


def _feats(m: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, d, generator=g, requires_grad=True) for d in DIMS[:m]]


# ------------------------------------------------------------------------------------ fusion


def test_available_fusions() -> None:
    assert available_fusions() == sorted(FUSIONS)


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("name", FUSIONS)
def test_fusion_forward_backward(name: str, m: int) -> None:
    torch.manual_seed(0)
    fusion = build_fusion(name, DIMS[:m], C, hidden=16)
    feats = _feats(m)
    logits, per = fusion(feats)
    assert logits.shape == (B, C)
    assert len(per) == m
    assert all(p.shape == (B, C) for p in per)
    assert torch.isfinite(logits).all()

    logits.pow(2).sum().backward()
    for pname, p in fusion.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{name}: zero gradient for {pname}"
    for i, h in enumerate(feats):  # the fused logits depend on every modality
        assert h.grad is not None and h.grad.abs().sum() > 0, f"{name}: modality {i} unused"


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("name", FUSIONS)
def test_per_modality_logits_depend_on_own_modality_only(name: str, m: int) -> None:
    torch.manual_seed(1)
    fusion = build_fusion(name, DIMS[:m], C, hidden=16)
    feats = _feats(m, seed=1)
    _, per = fusion(feats)
    for k in range(m):
        grads = torch.autograd.grad(per[k].sum(), feats, retain_graph=True, allow_unused=True)
        for j, g in enumerate(grads):
            if j == k:
                assert g is not None and g.abs().sum() > 0
            else:
                assert g is None or torch.count_nonzero(g) == 0


@pytest.mark.parametrize("m", [2, 3])
def test_concat_per_modality_logits_sum_to_logits(m: int) -> None:
    fusion = build_fusion("concat", DIMS[:m], C)
    with torch.no_grad():
        fusion.fc.bias.uniform_(-1, 1)  # init sets 0: make the b/M share visible
        feats = _feats(m)
        logits, per = fusion(feats)
        torch.testing.assert_close(torch.stack(per).sum(0), logits, atol=1e-5, rtol=0)
        # hand-computed slice for modality 0: h_0 @ W[:, :D_0].T + b / M
        w, b = fusion.fc.weight, fusion.fc.bias
        expect0 = feats[0] @ w[:, : DIMS[0]].t() + b / m
        torch.testing.assert_close(per[0], expect0, atol=1e-6, rtol=0)


@pytest.mark.parametrize("m", [2, 3])
def test_late_is_mean_and_sum_is_sum(m: int) -> None:
    feats = _feats(m)
    with torch.no_grad():
        late = build_fusion("late", DIMS[:m], C)
        logits, per = late(feats)
        torch.testing.assert_close(logits, torch.stack(per).mean(0), atol=1e-6, rtol=0)
        torch.testing.assert_close(per[1], late.heads[1](feats[1]))
        summ = build_fusion("sum", DIMS[:m], C)
        logits, per = summ(feats)
        torch.testing.assert_close(logits, sum(per), atol=1e-5, rtol=0)


def test_film_and_gated_match_two_modality_formulas() -> None:
    feats = _feats(2)
    with torch.no_grad():
        film = build_fusion("film", DIMS[:2], C, hidden=8)
        p0, p1 = film.proj[0](feats[0]), film.proj[1](feats[1])
        gamma, beta = film.film(p0).split(8, dim=1)  # the first modality conditions the second
        torch.testing.assert_close(film(feats)[0], film.head(gamma * p1 + beta))

        gated = build_fusion("bigated", DIMS[:2], C, hidden=8)
        q0, q1 = gated.proj[0](feats[0]), gated.proj[1](feats[1])
        expect = gated.head(torch.sigmoid(q0) * q1 + torch.sigmoid(q1) * q0)
        torch.testing.assert_close(gated(feats)[0], expect)


def test_fusion_init_applied() -> None:
    fusion = build_fusion("cross_attention", DIMS[:3], C, hidden=16)
    assert torch.count_nonzero(fusion.head.bias) == 0
    assert torch.count_nonzero(fusion.attn.out_proj.bias) == 0
    assert torch.equal(fusion.norm.weight, torch.ones(16))
    assert fusion.attn.num_heads == 4


def test_fusion_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"model\.fusion.*'nope'"):
        build_fusion("nope", [4, 4], C)
    with pytest.raises(ConfigError, match=r"cfg\.fusion_x"):
        build_fusion("nope", [4, 4], C, key="cfg.fusion_x")
    with pytest.raises(ConfigError, match=r"model\.fusion.*at least 2"):
        build_fusion("film", [4], C)
    with pytest.raises(ConfigError, match=r"model\.fusion"):
        build_fusion("late", [4, 4], C, bogus=1)
    fusion = build_fusion("late", [4, 4], C)
    with pytest.raises(ValueError, match="expects 2"):
        fusion([torch.zeros(1, 4)])


# ------------------------------------------------------------------------------------ encoders

# (spec, input_shape, expected out_dim)
ENCODER_CASES = [
    ({"name": "smallcnn"}, (1, 64, 64), 64),
    ({"name": "smallcnn", "channels": [8, 16], "dim": 10}, (20, 18), 10),
    ({"name": "smallcnn", "channels": [8]}, (784,), 8),
    ({"name": "lenet"}, (784,), 48),  # MultiBench LeNet(1, 6, 3) on 28x28
    ({"name": "lenet"}, (112, 112), 192),  # MultiBench LeNet(1, 6, 5) on 112x112
    ({"name": "lenet", "dim": 7}, (1, 28, 28), 7),
    ({"name": "mlp", "hidden": [16, 8], "dropout": 0.1}, (3, 5), 8),
    ({"name": "mlp", "hidden": []}, (6,), 6),
    ({"name": "resnet18", "mode": "audio"}, (1, 64, 64), 512),
    ({"name": "resnet18", "mode": "audio"}, (32, 32), 512),
    ({"name": "resnet18", "mode": "visual"}, (2, 3, 32, 32), 512),
    ({"name": "resnet18", "mode": "visual"}, (3, 32, 32), 512),
    ({"name": "mobilenetv2"}, (3, 32, 32), 1280),
    ({"name": "mobilenetv2", "dim": 12}, (3, 32, 32), 12),
    ({"name": "transformer", "width": 32, "heads": 4}, (10, 20), 32),
    (
        {"name": "transformer", "width": 16, "heads": 2, "layers": 1, "positional": "learned",
         "kernel_size": 3},
        (10, 20),
        16,
    ),
]


def test_available_encoders() -> None:
    assert available_encoders() == sorted(
        ["smallcnn", "lenet", "mlp", "resnet18", "mobilenetv2", "transformer"]
    )


@pytest.mark.parametrize(("spec", "shape", "out_dim"), ENCODER_CASES, ids=lambda v: str(v))
def test_encoder_output_shape(spec: dict, shape: tuple[int, ...], out_dim: int) -> None:
    torch.manual_seed(0)
    enc = build_encoder(spec, shape)
    assert isinstance(enc.out_dim, int) and enc.out_dim == out_dim
    x = torch.randn(2, *shape)
    y = enc(x)
    assert y.shape == (2, out_dim)
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()
    params = [p for p in enc.parameters() if p.requires_grad]
    if spec.get("hidden") == []:
        assert params == []  # identity MLP: flatten only
        torch.testing.assert_close(y, x.reshape(2, -1))
    else:
        y.sum().backward()
        assert params[0].grad is not None and params[0].grad.abs().sum() > 0


def test_resnet_visual_pools_over_frames() -> None:
    """3-D average pooling over (T, h, w) == mean over frames of the per-frame 2-D pool."""
    torch.manual_seed(0)
    enc = build_encoder({"name": "resnet18", "mode": "visual"}, (2, 3, 32, 32)).eval()
    x = torch.randn(2, 2, 3, 32, 32)
    with torch.no_grad():
        both = enc(x)
        per_frame = [enc(x[:, t : t + 1]) for t in range(2)]
    torch.testing.assert_close(both, (per_frame[0] + per_frame[1]) / 2, atol=1e-5, rtol=1e-4)
    assert enc.conv1.in_channels == 3


def test_resnet_audio_stem_is_one_channel() -> None:
    enc = build_encoder({"name": "resnet18", "mode": "audio"}, (1, 64, 64))
    assert (enc.conv1.in_channels, enc.conv1.kernel_size, enc.conv1.stride) == (1, (7, 7), (2, 2))
    assert not hasattr(enc, "fc")


def test_encoder_init_applied() -> None:
    enc = build_encoder({"name": "smallcnn", "dim": 10}, (1, 16, 16))
    assert torch.count_nonzero(enc.proj.bias) == 0
    bn = enc.features[1]
    assert isinstance(bn, nn.BatchNorm2d)
    assert torch.equal(bn.weight, torch.ones_like(bn.weight))
    assert torch.count_nonzero(bn.bias) == 0

    tr = build_encoder({"name": "transformer", "width": 32, "heads": 4}, (10, 20))
    lin = tr.encoder.layers[0].linear1
    assert torch.count_nonzero(lin.bias) == 0
    assert torch.count_nonzero(tr.proj.bias) == 0
    assert tr.encoder.layers[0].self_attn.num_heads == 4
    assert len(tr.encoder.layers) == 4


def test_transformer_defaults() -> None:
    tr = build_encoder({"name": "transformer", "width": 64}, (3, 5))
    assert tr.encoder.layers[0].self_attn.num_heads == 8
    assert len(tr.encoder.layers) == 4
    assert tr.proj.kernel_size == (1,)


def test_init_weights_statistics() -> None:
    torch.manual_seed(0)
    lin, conv = nn.Linear(400, 300), nn.Conv2d(16, 64, 3)
    with torch.no_grad():
        lin.bias.fill_(3.0)
        conv.bias.fill_(3.0)
    init_weights(nn.Sequential(lin, conv, nn.LayerNorm(4)))
    # Xavier-normal: std = sqrt(2 / (fan_in + fan_out)); Kaiming fan_out: std = sqrt(2 / (64*9))
    assert abs(lin.weight.std().item() - (2 / 700) ** 0.5) < 0.003
    assert abs(conv.weight.std().item() - (2 / 576) ** 0.5) < 0.003
    assert torch.count_nonzero(lin.bias) == 0 and torch.count_nonzero(conv.bias) == 0


def test_encoder_errors_name_the_key() -> None:
    key = "model.encoders.audio"
    with pytest.raises(ConfigError, match=r"model\.encoders\.audio\.name.*'nope'"):
        build_encoder({"name": "nope"}, (1, 8, 8), key=key)
    with pytest.raises(ConfigError, match=r"model\.encoders\.audio\.widthh.*smallcnn"):
        build_encoder({"name": "smallcnn", "widthh": 3}, (1, 8, 8), key=key)
    with pytest.raises(ConfigError, match=r"model\.encoders\.audio\.mode"):
        build_encoder({"name": "resnet18", "mode": "text"}, (1, 8, 8), key=key)
    with pytest.raises(ConfigError, match=r"model\.encoders\.audio"):
        build_encoder({"name": "smallcnn"}, (10,), key=key)  # 10 is not a perfect square
    with pytest.raises(ConfigError, match=r"model\.encoders\.audio"):
        build_encoder({"name": "transformer", "width": 30, "heads": 4}, (5, 3), key=key)
    with pytest.raises(ConfigError, match=r"model\.encoders\.audio"):
        build_encoder({"name": "smallcnn", "channels": 16}, (1, 8, 8), key=key)
    with pytest.raises(ConfigError, match=r"model\.encoders\.audio"):
        build_encoder({"channels": [4]}, (1, 8, 8), key=key)


def test_smallcnn_is_fast_on_one_core() -> None:
    enc = build_encoder({"name": "smallcnn"}, (1, 64, 64)).eval()
    x = torch.randn(16, 1, 64, 64)
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            enc(x)
            best = float("inf")
            for _ in range(5):
                t0 = time.perf_counter()
                enc(x)
                best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(prev)
    assert best < 0.05, f"smallcnn forward took {best * 1e3:.1f} ms"


def test_cross_attention_attends_to_other_modalities_only() -> None:
    """With M = 2 each token's only key is the other token (self masked), so the fused logits do
    not depend on the query/key projections; they do depend on the value projection."""
    torch.manual_seed(0)
    fusion = build_fusion("cross_attention", DIMS[:2], C, hidden=16).eval()
    feats = [f.detach() for f in _feats(2)]
    with torch.no_grad():
        before = fusion(feats)[0]
        fusion.attn.in_proj_weight[:32].normal_()  # q and k rows
        torch.testing.assert_close(fusion(feats)[0], before)
        fusion.attn.in_proj_weight[32:].normal_()  # v rows
        assert not torch.allclose(fusion(feats)[0], before)
