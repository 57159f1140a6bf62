"""avmnist_fsdd: AV-MNIST rebuilt from the real MNIST + FSDD files in ../shared/data, and its
verified download path against a local HTTP server."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from conftest import need_shared
from g2d.data.avmnist_fsdd import FSDD_TEST_TAKES, MNIST_FILES, parse_fsdd_name, read_idx
from g2d.data.prepared import PreparedDataset, atomic_dir, read_meta
from g2d.data.registry import get_dataset
from g2d.errors import ConfigError, DataError

SUBSET = {"subset_train": 1200, "subset_test": 300}


def _parse_id(sid: str) -> tuple[str, int, tuple[int, str, int]]:
    """'mtrain123_3_theo_17' -> ('train', 123, (3, 'theo', 17))."""
    head, rec = sid.split("_", 1)
    split = "train" if head.startswith("mtrain") else "test"
    return split, int(head[len("m" + split):]), parse_fsdd_name(rec + ".wav")


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory) -> Path:
    shared = need_shared("mnist").parent
    need_shared("fsdd", "recordings")
    raw = tmp_path_factory.mktemp("avmnist_raw")
    spec = get_dataset("avmnist_fsdd")
    spec.acquire(spec.params(SUBSET), raw, "local", shared)
    return raw


@pytest.fixture(scope="module")
def prepared(raw_dir, tmp_path_factory) -> Path:
    spec = get_dataset("avmnist_fsdd")
    out = tmp_path_factory.mktemp("avmnist_prep") / "prepared"
    with atomic_dir(out) as tmp:
        spec.prepare(spec.params(SUBSET), raw_dir, tmp)
    return out


def test_acquire_local_layout_and_idempotent(raw_dir):
    for name in MNIST_FILES.values():
        assert (raw_dir / "mnist" / name).is_file()
    wavs = sorted((raw_dir / "fsdd" / "recordings").glob("*.wav"))
    assert len(wavs) == 3000
    before = {p: p.stat().st_mtime_ns for p in wavs[:20]}
    spec = get_dataset("avmnist_fsdd")
    spec.acquire(spec.params(SUBSET), raw_dir, "local", None)  # all present and verified: no source needed
    assert {p: p.stat().st_mtime_ns for p in wavs[:20]} == before
    # corrupt files are detected and replaced from the source
    labels = raw_dir / "mnist" / MNIST_FILES["test_labels"]
    good_labels, good_wav = labels.read_bytes(), wavs[7].read_bytes()
    # raw files are private copies (never hard links into the source): safe to damage here
    assert labels.stat().st_nlink == 1 and wavs[7].stat().st_nlink == 1
    labels.write_bytes(b"not gzip")
    wavs[7].write_bytes(good_wav[:-10] + b"0123456789")
    spec.acquire(spec.params(SUBSET), raw_dir, "local", need_shared("mnist").parent)
    assert labels.read_bytes() == good_labels and wavs[7].read_bytes() == good_wav


def test_shapes_and_meta(prepared):
    meta = read_meta(prepared)
    assert meta["modalities"]["visual"]["shape"] == [1, 28, 28]
    assert meta["modalities"]["audio"]["shape"] == [1, 112, 112]
    assert meta["splits"] == {"train": 1100, "val": 100, "test": 300}
    assert meta["pca_components"] >= 1
    ds = PreparedDataset(prepared, "test")
    i, x, y = ds[0]
    assert x["audio"].shape == (1, 112, 112) and x["visual"].shape == (1, 28, 28)
    assert 0 <= int(y) <= 9
    for split in ("train", "val", "test"):
        d = PreparedDataset(prepared, split)
        for m, a in d.arrays.items():
            assert float(np.min(a)) >= 0.0 and float(np.max(a)) <= 1.0, (split, m)


def test_pairs_agree_and_audio_splits(prepared, raw_dir):
    mnist_train_labels = read_idx(raw_dir / "mnist" / MNIST_FILES["train_labels"])
    mnist_test_labels = read_idx(raw_dir / "mnist" / MNIST_FILES["test_labels"])
    used: dict[str, set[str]] = {}
    for split in ("train", "val", "test"):
        ds = PreparedDataset(prepared, split)
        recs = set()
        for sid, y in zip(ds.ids, ds.labels):
            msplit, idx, (digit, spk, take) = _parse_id(str(sid))
            mnist_y = (mnist_train_labels if msplit == "train" else mnist_test_labels)[idx]
            assert digit == y == mnist_y, sid
            if split == "test":
                assert msplit == "test" and take in FSDD_TEST_TAKES, sid
            else:
                assert msplit == "train" and take not in FSDD_TEST_TAKES, sid
                assert (idx >= 55_000) == (split == "val"), sid  # MultiBench: rows 55 000+ are validation
            recs.add(f"{digit}_{spk}_{take}")
        used[split] = recs
    assert not (used["train"] | used["val"]) & used["test"]


def test_multibench_layout(prepared):
    meta = read_meta(prepared)
    mb = prepared / meta["multibench_dir"]
    img_tr, img_te = np.load(mb / "image" / "train_data.npy"), np.load(mb / "image" / "test_data.npy")
    aud_tr, aud_te = np.load(mb / "audio" / "train_data.npy"), np.load(mb / "audio" / "test_data.npy")
    y_tr, y_te = np.load(mb / "train_labels.npy"), np.load(mb / "test_labels.npy")
    assert img_tr.shape == (1200, 784) and img_te.shape == (300, 784)
    assert aud_tr.shape == (1200, 112, 112) and aud_te.shape == (300, 112, 112)
    assert y_tr.shape == (1200,) and y_te.shape == (300,)
    assert img_tr.dtype == np.uint8 and aud_tr.dtype == np.uint8
    # the prepared splits are the MultiBench arrays / 255; the last val rows are validation
    n_val = meta["multibench_val_rows"]
    val = PreparedDataset(prepared, "val")
    np.testing.assert_array_equal(val.labels, y_tr[-n_val:])
    np.testing.assert_allclose(np.asarray(val.arrays["visual"][:5], np.float32).reshape(5, 784),
                               img_tr[-n_val:][:5] / 255.0, atol=1e-3)
    np.testing.assert_allclose(np.asarray(PreparedDataset(prepared, "test").arrays["audio"][:3, 0], np.float32),
                               aud_te[:3] / 255.0, atol=1e-3)
    # PCA at 25 % energy really degrades the images (few components, blurry)
    assert meta["pca_components"] <= 10


def test_heldout_speaker(raw_dir, tmp_path):
    spec = get_dataset("avmnist_fsdd")
    p = spec.params({"subset_train": 200, "subset_test": 100, "heldout_speaker": "theo", "write_multibench": False})
    with atomic_dir(tmp_path / "p") as tmp:
        spec.prepare(p, raw_dir, tmp)
    for split in ("train", "val", "test"):
        spk = {_parse_id(str(s))[2][1] for s in PreparedDataset(tmp_path / "p", split).ids}
        assert (spk == {"theo"}) if split == "test" else ("theo" not in spk), (split, spk)
    with pytest.raises(ConfigError, match="heldout_speaker"):
        spec.prepare(spec.params({"heldout_speaker": "nobody"}), raw_dir, tmp_path / "q")


def test_local_source_errors(tmp_path):
    spec = get_dataset("avmnist_fsdd")
    with pytest.raises(ConfigError, match="source_dir"):
        spec.acquire(spec.params({}), tmp_path / "raw", "local", None)
    (tmp_path / "src" / "mnist").mkdir(parents=True)
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        spec.acquire(spec.params({}), tmp_path / "raw", "local", tmp_path / "src")
    with pytest.raises(ConfigError, match="dataset.source"):
        spec.acquire(spec.params({}), tmp_path / "raw", "generate", None)
    with pytest.raises(DataError, match="run `g2d acquire`"):
        spec.prepare(spec.params({}), tmp_path / "raw", tmp_path / "out")


# ------------------------------------------------------------------------------------------
# download path against a local HTTP server

def _idx_gz(arr: np.ndarray) -> bytes:
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return gzip.compress(header + arr.astype(np.uint8).tobytes(), mtime=0)


def _wav_bytes(seed: int) -> bytes:
    import soundfile as sf

    t = np.arange(3000) / 8000.0
    x = 0.3 * np.sin(2 * np.pi * (200 + 50 * seed) * t) * np.hanning(len(t))
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), 8000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def http_root(tmp_path):
    """Serve tmp_path/www on 127.0.0.1 (ephemeral port) from a daemon thread."""
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _write_manifest(path: Path, rows: list[tuple[str, str, str, int]]) -> Path:
    lines = ["path\turl\tsha256\tsize\tcontent_sha256"] + [f"{p}\t{u}\t{s}\t{n}\t" for p, u, s, n in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_download_verified_then_bad_checksum(http_root, tmp_path):
    root, base = http_root
    rng = np.random.default_rng(0)
    files: dict[str, bytes] = {
        "mnist/train-images-idx3-ubyte.gz": _idx_gz(rng.integers(0, 256, (24, 28, 28))),
        "mnist/train-labels-idx1-ubyte.gz": _idx_gz(np.arange(24) % 2),
        "mnist/t10k-images-idx3-ubyte.gz": _idx_gz(rng.integers(0, 256, (12, 28, 28))),
        "mnist/t10k-labels-idx1-ubyte.gz": _idx_gz(np.arange(12) % 2),
    }
    for i, name in enumerate(["0_george_0.wav", "0_george_5.wav", "1_george_0.wav", "1_george_5.wav"]):
        files[f"fsdd/recordings/{name}"] = _wav_bytes(i)
    rows = []
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        rows.append((rel, f"{base}/{rel}", hashlib.sha256(data).hexdigest(), len(data)))
    good = _write_manifest(tmp_path / "good.tsv", rows)

    spec = get_dataset("avmnist_fsdd")
    raw = tmp_path / "raw"
    p = spec.params({"manifest": str(good), "download_workers": 2})
    spec.acquire(p, raw, "download", None)
    for rel, data in files.items():
        assert (raw / rel).read_bytes() == data
    with atomic_dir(tmp_path / "prep") as tmp:
        meta = spec.prepare(p, raw, tmp)
    assert meta["splits"] == {"train": 22, "val": 2, "test": 12}
    test_recs = {str(s).split("_", 1)[1] for s in PreparedDataset(tmp_path / "prep", "test").ids}
    assert test_recs <= {"0_george_0", "1_george_0"}

    # a wav whose served bytes do not match the manifest: DataError naming the file
    bad_name = "1_jackson_7.wav"
    (root / "fsdd/recordings" / bad_name).write_bytes(_wav_bytes(9))
    bad_rows = rows + [(f"fsdd/recordings/{bad_name}", f"{base}/fsdd/recordings/{bad_name}", "0" * 64, len(_wav_bytes(9)))]
    bad = _write_manifest(tmp_path / "bad.tsv", bad_rows)
    with pytest.raises(DataError, match=bad_name):
        spec.acquire(spec.params({"manifest": str(bad), "download_workers": 2}), raw, "download", None)
    assert not (raw / "fsdd/recordings" / bad_name).exists()  # never left half-verified in place
