"""The batched loader path (PreparedDataset.__getitems__) gives exactly the batches of the
per-sample path, for float16 and float32 caches, classification and regression, shuffled or not,
with augmentation falling back to per-sample reads (same random draws)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from g2d.data.prepared import PreparedBatch, PreparedDataset, write_prepared
from g2d.train.common import make_loader


class PerSample(PreparedDataset):
    __getitems__ = None  # DataLoader fetches sample by sample, as before the batched path existed


def _write(tmp, dtype, task):
    rng = np.random.default_rng(0)
    sizes = {"train": 37, "val": 5, "test": 6}
    splits = {s: {"img": rng.standard_normal((n, 2, 5, 4)).astype(np.float32) * 3,
                  "seq": rng.standard_normal((n, 7, 3)).astype(np.float32)} for s, n in sizes.items()}
    labels = {s: (rng.integers(0, 4, n) if task == "classification" else rng.random(n)) for s, n in sizes.items()}
    ids, off = {}, 0
    for s, n in sizes.items():
        ids[s] = np.array([f"{s}{i}" for i in range(n)])
    write_prepared(tmp, dataset="t", task=task, classes=list("abcd") if task == "classification" else None,
                   splits=splits, labels=labels, ids=ids, dtype=dtype)
    return tmp


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_batched_equals_per_sample(tmp_path, dtype, task, shuffle):
    d = _write(tmp_path, dtype, task)
    new, old = PreparedDataset(d, "train"), PerSample(d, "train")
    for bs in (16, 5, 1):
        a, b = make_loader(new, bs, shuffle, 3), make_loader(old, bs, shuffle, 3)
        a.sampler.set_epoch(2) if shuffle else None
        b.sampler.set_epoch(2) if shuffle else None
        n = 0
        for (i1, x1, y1), (i2, x2, y2) in zip(a, b, strict=True):
            assert torch.equal(i1, i2) and i1.dtype == i2.dtype == torch.int64
            assert torch.equal(y1, y2) and y1.dtype == y2.dtype
            for m in x2:
                assert x1[m].dtype == torch.float32 and x1[m].is_contiguous() and torch.equal(x1[m], x2[m]), m
            n += len(y1)
        assert n == 37


def test_getitems_contract(tmp_path):
    ds = PreparedDataset(_write(tmp_path, "float16", "classification"), "train")
    b = ds.__getitems__([3, -1, 0])
    assert isinstance(b, PreparedBatch) and b.index.tolist() == [3, 36, 0]
    for j, i in enumerate([3, 36, 0]):
        _, x, y = ds[i]
        assert torch.equal(b.x["img"][j], x["img"]) and b.y[j] == y
    with pytest.raises(IndexError):
        ds.__getitems__([37])


def test_augmentation_uses_the_per_sample_path(tmp_path):
    d = _write(tmp_path, "float32", "classification")
    noise = {"img": lambda t: t + torch.randn_like(t)}
    a, b = PreparedDataset(d, "train", transforms=noise), PerSample(d, "train", transforms=noise)
    torch.manual_seed(0)
    xa = [x["img"] for _, x, _ in make_loader(a, 8, False)]
    torch.manual_seed(0)
    xb = [x["img"] for _, x, _ in make_loader(b, 8, False)]
    assert all(torch.equal(u, v) for u, v in zip(xa, xb, strict=True))
