"""Shared test fixtures.

Real data for tests lives in ../shared/data next to the checkout (dev and CI); tests that need
it skip with a reason when it is absent. Set G2D_SHARED_DATA to point elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("G2D_SHARED_DATA", REPO.parent / "shared" / "data"))

torch.set_num_threads(int(os.environ.get("G2D_TEST_THREADS", "2")))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED_DATA


def need_shared(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test with the reason."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real test data not present: {p} (see ../shared/data/README.md)")
    return p


# ---- a synthetic prepared dataset registered under a test-only name -------------------------------

def _register_synth(name: str, modalities: dict, n_classes: int = 3):
    from g2d.data.registry import DatasetSpec, register
    return register(DatasetSpec(
        name=name, task="classification", modalities=tuple(modalities), classes=tuple(str(i) for i in range(n_classes)),
        default_encoders={m: {"name": "mlp", "hidden": [16]} for m in modalities},
        acquire=lambda params, raw, source, source_dir: None,
        prepare=lambda params, raw, out: _write_synth(out, name, modalities, n_classes, params.get("seed", 0)),
        default_params={"seed": 0}, description="test-only synthetic dataset"))


def _write_synth(out, name, modalities, n_classes, seed, sizes=(96, 32, 32)):
    import numpy as np
    from g2d.data.prepared import write_prepared
    rng = np.random.default_rng(seed)
    # class centres shared by all splits; the first modality is the informative (dominant) one
    centers = {m: rng.standard_normal((n_classes, dim)) * (1.5 if j == 0 else 0.4)
               for j, (m, dim) in enumerate(modalities.items())}
    splits, labels, ids = {}, {}, {}
    off = 0
    for split, n in zip(("train", "val", "test"), sizes):
        y = rng.integers(0, n_classes, n)
        mods = {}
        for m, dim in modalities.items():
            mods[m] = (centers[m][y] + rng.standard_normal((n, dim))).astype(np.float32)
        splits[split], labels[split] = mods, y
        ids[split] = np.array([f"s{off + i}" for i in range(n)])
        off += n
    return write_prepared(out, dataset=name, task="classification", classes=[str(i) for i in range(n_classes)],
                          splits=splits, labels=labels, ids=ids, dtype="float32")


@pytest.fixture
def synth_cfg(tmp_path):
    """A validated config for a prepared 2-modality synthetic dataset (prepared in tmp_path)."""
    from g2d.config import load_config
    from g2d.data.pipeline import prepare
    _register_synth("synth2", {"a": 12, "b": 10})
    cfg = load_config(data={
        "dataset": {"name": "synth2", "raw_dir": str(tmp_path / "raw"), "prepared_dir": str(tmp_path / "prep")},
        "train": {"epochs": 3, "batch_size": 16, "lr": 0.05},
        "g2d": {"schedule": [1, 2]},
        "study": {"seeds": [0]},
    })
    prepare(cfg, log=lambda *a: None)
    return cfg


@pytest.fixture
def synth3_cfg(tmp_path):
    from g2d.config import load_config
    from g2d.data.pipeline import prepare
    _register_synth("synth3", {"a": 12, "b": 10, "c": 8})
    cfg = load_config(data={
        "dataset": {"name": "synth3", "raw_dir": str(tmp_path / "raw"), "prepared_dir": str(tmp_path / "prep")},
        "train": {"epochs": 4, "batch_size": 16, "lr": 0.05},
        "g2d": {"schedule": [1, 1, 2]},
    })
    prepare(cfg, log=lambda *a: None)
    return cfg
