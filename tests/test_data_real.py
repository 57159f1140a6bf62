"""AV-MNIST, VGGSound, UR-FUNNY, IEMOCAP and MIS-ME on tiny fixtures in their real on-disk formats
(npy, mp4 with audio, pickle, npz, jpg + csv): acquire (manual/local), prepare into an atomic dir,
shapes, dtypes, label mapping, split sizes, determinism and the one-line missing-file errors."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from g2d.data.prepared import PreparedDataset, atomic_dir, read_meta
from g2d.data.registry import get_dataset
from g2d.errors import ConfigError, DataError

import _media_fixtures as M


def _prepare(name, params, raw, out):
    spec = get_dataset(name)
    with atomic_dir(out) as tmp:
        spec.prepare(params, raw, tmp)
    return read_meta(out)


def _same_dirs(a, b):
    for s in ("train", "val", "test"):
        for f in sorted(os.listdir(a / s)):
            assert np.array_equal(np.load(a / s / f), np.load(b / s / f)), f"{s}/{f} differs"


def _missing_error(name, params, raw, *expect):
    with pytest.raises(DataError) as ei:
        get_dataset(name).acquire(params, raw, "manual", None)
    msg = str(ei.value)
    assert "\n" not in msg and str(raw) in msg
    for e in expect:
        assert e in msg, msg
    return msg


# ------------------------------------------------------------------------------------- AV-MNIST

def test_avmnist(tmp_path):
    from g2d.data.avmnist import EXPECTED_FILES, read_multibench_avmnist

    spec = get_dataset("avmnist")
    raw = tmp_path / "raw"
    msg = _missing_error("avmnist", spec.params({}), raw, *EXPECTED_FILES)
    assert "MultiBench" in msg
    src = tmp_path / "src"
    M.make_avmnist_raw(src)
    spec.acquire(spec.params({}), raw, "local", src)
    data = read_multibench_avmnist(raw)
    assert data["train"]["image"].shape == (12, 784) and data["test"]["audio"].shape == (5, 112, 112)
    with pytest.raises(ConfigError, match="val_size"):
        _prepare("avmnist", spec.params({}), raw, tmp_path / "bad")  # default 5000 > 12 rows
    params = spec.params({"val_size": 4, "dtype": "float32"})
    meta = _prepare("avmnist", params, raw, tmp_path / "p1")
    assert meta["splits"] == {"train": 8, "val": 4, "test": 5}
    assert meta["modalities"] == {"audio": {"shape": [1, 112, 112], "dtype": "float32"},
                                  "visual": {"shape": [1, 28, 28], "dtype": "float32"}}
    img = np.load(raw / "image" / "train_data.npy")
    lab = np.load(raw / "train_labels.npy")
    val = PreparedDataset(tmp_path / "p1", "val")
    np.testing.assert_allclose(val.arrays["visual"][0, 0], img[8].reshape(28, 28) / 255.0, atol=1e-6)
    assert list(val.labels) == list(lab[8:]) and list(val.ids) == [f"train-{i}" for i in range(8, 12)]
    assert float(val.arrays["audio"].max()) <= 1.0
    _prepare("avmnist", params, raw, tmp_path / "p2")
    _same_dirs(tmp_path / "p1", tmp_path / "p2")


# ------------------------------------------------------------------------------------- VGGSound

def test_vggsound(tmp_path):
    import torch

    spec = get_dataset("vggsound")
    raw = tmp_path / "raw"
    M.make_vggsound_raw(raw)
    small = {"frame_size": 32, "crop_size": 28, "progress": False, "val_fraction": 0.34}
    msg = _missing_error("vggsound", spec.params(small), raw, "yt08x_80.mp4", str(raw / "video"), "missing: skip")
    params = spec.params({**small, "missing": "skip"})
    spec.acquire(params, raw, "manual", None)
    meta = _prepare("vggsound", params, raw, tmp_path / "p1")
    assert meta["splits"] == {"train": 4, "val": 2, "test": 2} and meta["skipped_missing_clips"] == 1
    assert meta["classes"] == ["dog barking", "playing piano", "rain"]
    assert meta["modalities"]["audio"]["shape"] == [1, 129, 626]
    assert meta["modalities"]["visual"]["shape"] == [3, 3, 32, 32]
    ds = PreparedDataset(tmp_path / "p1", "test")
    assert [str(i) for i in ds.ids] == ["yt06x_60", "yt07x_70"]
    assert list(ds.labels) == [0, 2]
    spec_mean = ds.arrays["audio"][0, 0].astype(np.float32).mean(axis=1)
    assert abs(int(spec_mean.argmax()) - 16) <= 1  # 1 kHz tone at 16 kHz / n_fft 256 → bin 16
    grey = M.frame_value(11, offset=13 * 6) / 255.0  # 25 fps: 1-based round(12.5) = 12 → 0-based 11
    np.testing.assert_allclose(ds.arrays["visual"][0, 0].astype(np.float32).mean(axis=(1, 2)),
                               (grey - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]),
                               atol=5 / 255 / 0.224)
    aug = spec.train_transforms(params)["visual"]
    assert tuple(aug(torch.zeros(3, 3, 32, 32)).shape) == (3, 3, 28, 28)
    _prepare("vggsound", params, raw, tmp_path / "p2")
    _same_dirs(tmp_path / "p1", tmp_path / "p2")


# ------------------------------------------------------------------------------------- UR-FUNNY

def test_urfunny(tmp_path):
    spec = get_dataset("urfunny")
    raw = tmp_path / "raw"
    _missing_error("urfunny", spec.params({}), raw, "humor.pkl", "MultiBench")
    data, digest = M.make_humor_pkl(raw)
    spec.acquire(spec.params({}), raw, "manual", None)
    with pytest.raises(DataError, match="not a known release") as ei:  # unknown hash: refuse to unpickle
        _prepare("urfunny", spec.params({}), raw, tmp_path / "p0")
    assert digest in str(ei.value)
    with pytest.raises(DataError, match="does not match"):
        _prepare("urfunny", spec.params({"sha256": "0" * 64}), raw, tmp_path / "p0")
    params = spec.params({"sha256": digest, "seq_len": 5})
    meta = _prepare("urfunny", params, raw, tmp_path / "p1")
    assert meta["splits"] == {"train": 5, "val": 3, "test": 4}
    assert meta["modalities"]["visual"]["shape"] == [5, 371]
    assert meta["modalities"]["audio"]["shape"] == [5, 81] and meta["modalities"]["text"]["shape"] == [5, 300]
    tr = PreparedDataset(tmp_path / "p1", "train")
    assert list(tr.ids) == ["train-0", "train-1", "train-3", "train-4", "train-5"]
    np.testing.assert_allclose(tr.arrays["text"][0], data["train"]["text"][0, 2:7], rtol=1e-6)
    assert tr.arrays["audio"][0, 1, 5] == 0 and tr.arrays["visual"][1, 2, 7] == 0  # -inf / nan → 0
    assert list(tr.labels) == [int(v) for v in data["train"]["labels"][[0, 1, 3, 4, 5], 0]]
    _prepare("urfunny", params, raw, tmp_path / "p2")
    _same_dirs(tmp_path / "p1", tmp_path / "p2")
    # seq_len longer than the data: zero-padded at the end
    meta = _prepare("urfunny", spec.params({"trust_pickle": True, "seq_len": 10}), raw, tmp_path / "p3")
    te = PreparedDataset(tmp_path / "p3", "test")
    assert meta["modalities"]["text"]["shape"] == [10, 300] and not te.arrays["text"][:, 6:].any()


def test_urfunny_refuses_code_in_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "humor.pkl").write_bytes(pickle.dumps({"train": Evil()}))
    spec = get_dataset("urfunny")
    with pytest.raises(DataError, match="refusing to load"):
        _prepare("urfunny", spec.params({"trust_pickle": True}), raw, tmp_path / "p")


# ------------------------------------------------------------------------------------- IEMOCAP

def test_iemocap(tmp_path):
    spec = get_dataset("iemocap")
    raw = tmp_path / "raw"
    _missing_error("iemocap", spec.params({}), raw, "iemocap.npz", "savez")
    labels, sessions = M.IEMOCAP_LABELS, M.IEMOCAP_SESSIONS
    src = tmp_path / "src"
    M.make_iemocap_npz(src)
    spec.acquire(spec.params({}), raw, "local", src)
    params = spec.params({})
    meta = _prepare("iemocap", params, raw, tmp_path / "p1")
    kept = labels != "fru"
    assert meta["dropped_other_labels"] == int((~kept).sum())
    assert meta["classes"] == ["neutral", "angry", "sad", "happy"]
    vs = meta["val_session"]
    assert vs in (1, 2, 3, 4) and meta["test_session"] == 5
    for s, sess in (("test", {5}), ("val", {vs}), ("train", {1, 2, 3, 4} - {vs})):
        ds = PreparedDataset(tmp_path / "p1", s)
        assert {int(str(i)[4]) for i in ds.ids} == sess
        assert len(ds) == int((kept & np.isin(sessions, list(sess))).sum())
    name_to_label = {"neu": 0, "neutral": 0, "ang": 1, "sad": 2, "hap": 3, "exc": 3}
    te = PreparedDataset(tmp_path / "p1", "test")
    idx = [int(str(i).split("utt")[1]) for i in te.ids]
    assert list(te.labels) == [name_to_label[labels[i]] for i in idx]
    assert meta["modalities"]["audio"]["shape"] == [6, 10]
    _prepare("iemocap", params, raw, tmp_path / "p2")
    _same_dirs(tmp_path / "p1", tmp_path / "p2")
    with pytest.raises(DataError, match="fru"):
        _prepare("iemocap", spec.params({"drop_other": False}), raw, tmp_path / "p3")
    with pytest.raises(ConfigError, match="val_session"):
        _prepare("iemocap", spec.params({"val_session": 5}), raw, tmp_path / "p3")


# ------------------------------------------------------------------------------------- MIS-ME

def test_misme(tmp_path):
    from PIL import Image

    from g2d.data.misme import unscale

    spec = get_dataset("misme")
    raw = tmp_path / "raw"
    _missing_error("misme", spec.params({}), raw, "labels.csv", "MIS-ME")
    rows = M.make_misme_raw(raw)
    (raw / "images" / "patch_005.jpg").unlink()
    _missing_error("misme", spec.params({}), raw, "images/patch_005.jpg")
    Image.fromarray(np.zeros((40, 50, 3), dtype=np.uint8)).save(raw / "images" / "patch_005.jpg")
    params = spec.params({"image_size": 32, "dtype": "float32"})
    spec.acquire(params, raw, "manual", None)
    meta = _prepare("misme", params, raw, tmp_path / "p1")
    assert meta["task"] == "regression" and meta["classes"] is None
    assert meta["splits"] == {"train": 8, "val": 2, "test": 2}
    assert meta["modalities"]["image"]["shape"] == [3, 32, 32] and meta["modalities"]["tabular"]["shape"] == [8]
    assert meta["target_min"] == 10 and meta["target_max"] == 10 + 2.5 * 11
    tr = PreparedDataset(tmp_path / "p1", "train")
    np.testing.assert_allclose(tr.arrays["tabular"].mean(axis=0), 0, atol=1e-5)
    allv = np.concatenate([PreparedDataset(tmp_path / "p1", s).labels for s in ("train", "val", "test")])
    assert allv.min() == 0 and allv.max() == 1
    got = {str(i): float(unscale(y, meta)) for s in ("train", "val", "test")
           for i, y in zip(PreparedDataset(tmp_path / "p1", s).ids, PreparedDataset(tmp_path / "p1", s).labels)}
    assert got == pytest.approx({r["image"]: r["vwc"] for r in rows}, abs=1e-4)
    _prepare("misme", params, raw, tmp_path / "p2")
    _same_dirs(tmp_path / "p1", tmp_path / "p2")
