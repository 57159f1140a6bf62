"""Speed-ups of the training step change nothing: skipping the backward pass of SMP-suppressed
encoders (Method.frozen_modalities) gives bit-identical parameters, optimizer state and logged
losses to computing and zeroing their gradients, for every SMP method, several fusions, conv
(ResNet-18 + BatchNorm) and MLP encoders, SGD and Adam, 2 and 3 modalities."""

from __future__ import annotations

import pytest
import torch

from g2d.bench import _cfg_for_synthetic, _synthetic_spec
from g2d.config import dataset_dirs
from g2d.data.prepared import PreparedDataset, read_meta
from g2d.data.registry import get_dataset
from g2d.methods import Batch, Stepper, get_method
from g2d.models.nets import build_student
from g2d.smp import confidences
from g2d.train.common import make_loader
from g2d.train.teacher import make_optimizer


def _batches_from_loader(cfg, n):
    _, prep = dataset_dirs(cfg)
    out = []
    for i, b in enumerate(make_loader(PreparedDataset(prep, "train"), 16, True, 0)):
        if i == n:
            break
        out.append(b)
    return out


def _run(cfg, spec, meta, mods, batches, method, fusion, skip, epochs):
    torch.manual_seed(0)
    model = build_student(cfg, spec, meta, mods, fusion)
    meth = get_method(method)(cfg, mods, "classification", {})
    meth.skip_suppressed_backward = skip
    opt, _ = make_optimizer(cfg, meth.param_groups(model), cfg["train"]["lr"])
    g = torch.Generator().manual_seed(1)
    ncls = len(meta["classes"])
    logs, frozen = [], []
    for e in epochs:
        meth.on_epoch_start(e)
        for idx, x, y in batches:
            tl = {m: torch.randn(len(y), ncls, generator=g) * 3 for m in mods}
            tf = {m: torch.randn(len(y), model.encoders[m].out_dim, generator=g) for m in mods}
            b = Batch(idx=idx, x=x, y=y, teacher_logits=tl, teacher_features=tf)
            b.teacher_conf = confidences(tl, y)
            frozen.append(meth.frozen_modalities(e, b))
            lg = meth.training_step(model, b, Stepper(opt), e)
            lg.pop("_out")
            logs.append(lg)
    return model, opt, logs, frozen


def _assert_identical(a, b):
    ma, oa, la, _ = a
    mb, ob, lb, _ = b
    sa, sb = ma.state_dict(), mb.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa), [k for k in sa if not torch.equal(sa[k], sb[k])][:5]
    for k, st in oa.state_dict()["state"].items():
        for name, v in st.items():
            if isinstance(v, torch.Tensor):
                assert torch.equal(v, ob.state_dict()["state"][k][name]), (k, name)
    assert la == lb


@pytest.mark.parametrize("method", ["g2d", "smp", "umt_smp", "g2d_partial"])
@pytest.mark.parametrize("fusion", ["late", "concat", "cross_attention"])
def test_skipping_suppressed_backward_is_exact_three_modalities(synth3_cfg, method, fusion):
    cfg = synth3_cfg  # schedule [1, 1, 2]: epoch 0 and 1 prioritized, 2 joint
    spec = get_dataset("synth3")
    _, prep = dataset_dirs(cfg)
    meta = read_meta(prep)
    mods = ["a", "b", "c"]
    batches = _batches_from_loader(cfg, 3)
    a = _run(cfg, spec, meta, mods, batches, method, fusion, True, (0, 1, 2))
    b = _run(cfg, spec, meta, mods, batches, method, fusion, False, (0, 1, 2))
    _assert_identical(a, b)
    if method != "g2d_partial":  # complete suppression: 2 of 3 encoders skipped while prioritizing
        assert all(len(f) == 2 for f in a[3][:6]) and all(f == [] for f in a[3][6:])
    assert all(f == [] for f in b[3])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_skipping_suppressed_backward_is_exact_resnet18(synth_cfg, optimizer):
    shapes = {"audio": (1, 24, 20), "visual": (1, 3, 32, 32)}
    cfg = _cfg_for_synthetic(synth_cfg, 4)
    cfg["train"]["optimizer"] = optimizer
    spec = _synthetic_spec()
    meta = {"classes": list(spec.classes), "modalities": {m: {"shape": list(s)} for m, s in shapes.items()}}
    g = torch.Generator().manual_seed(0)
    batches = [(torch.arange(4) + 4 * i, {m: torch.randn(4, *s, generator=g) for m, s in shapes.items()},
                torch.randint(0, 6, (4,), generator=g)) for i in range(2)]
    a = _run(cfg, spec, meta, list(shapes), batches, "g2d", "late", True, (0, 0, 1))
    b = _run(cfg, spec, meta, list(shapes), batches, "g2d", "late", False, (0, 0, 1))
    _assert_identical(a, b)
    assert all(len(f) == 1 for f in a[3][:4]) and all(f == [] for f in a[3][4:])


def test_no_skipping_for_methods_with_their_own_coefficients(synth_cfg):
    """OGM-GE's coefficients depend on the forward pass (and it adds noise): never skipped."""
    meth = get_method("ogm_ge")(synth_cfg, ["a", "b"], "classification", {})
    b = Batch(idx=torch.arange(2), x={}, y=torch.zeros(2, dtype=torch.long), teacher_conf={"a": 0.1, "b": 0.9})
    assert meth.frozen_modalities(0, b) == []
    synth_cfg["g2d"]["conv_only"] = True
    assert get_method("g2d")(synth_cfg, ["a", "b"], "classification", {}).frozen_modalities(0, b) == []
