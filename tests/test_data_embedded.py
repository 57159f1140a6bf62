"""The embedded datasets: avdigits (sklearn digits + eSpeak NG speech), tiny3 and tinyreg."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import need_shared
from g2d.data.avdigits import Synthesizer, synthesize
from g2d.data.avmnist_fsdd import FSDD_TEST_TAKES
from g2d.data.prepared import PreparedDataset, atomic_dir, read_meta
from g2d.data.registry import available_datasets, get_dataset
from g2d.errors import ConfigError, DataError

# a small synthesis grid keeps the tests fast (20 utterances instead of 720)
SMALL = {"voices": ["en-us", "en+f2"], "rates": [175], "pitches": [50]}
SPLITS = ("train", "val", "test")
_ID = re.compile(r"^d(\d{4})r(\d+)_(\d)_")


def _build(raw: Path, out: Path, **over) -> dict:
    spec = get_dataset("avdigits")
    p = spec.params({**SMALL, **over})
    spec.acquire(p, raw, "generate", None)
    with atomic_dir(out) as tmp:
        return spec.prepare(p, raw, tmp)


def _arrays(prep: Path) -> dict[str, np.ndarray]:
    return {f"{s}/{f.stem}": np.load(f) for s in SPLITS for f in sorted((prep / s).glob("*.npy"))}


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("avdigits_raw")


@pytest.fixture(scope="module")
def prepared(raw, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("avdigits") / "prepared"
    _build(raw, out)
    return out


def test_registry_entries():
    names = available_datasets()
    assert {"avdigits", "avmnist_fsdd", "tiny3", "tinyreg"} <= set(names)
    spec = get_dataset("avdigits")
    assert spec.modalities == ("audio", "visual")
    assert spec.classes == tuple(str(d) for d in range(10))
    assert spec.default_encoders == {"audio": {"name": "smallcnn"}, "visual": {"name": "smallcnn"}}
    with pytest.raises(ConfigError, match="dataset.params.nope"):
        spec.params({"nope": 1})


def test_espeak_synthesis_is_speech():
    x, sr = synthesize("seven", "en-us", 175, 50)
    assert sr == 22050
    assert x.dtype == np.float32 and 0.2 < len(x) / sr < 1.5
    rms = float(np.sqrt(np.mean(x ** 2)))
    assert rms > 0.01 and np.abs(x).max() <= 1.0
    with Synthesizer() as syn:  # deterministic whatever was synthesized before
        assert syn.sample_rate == sr
        first = syn.synth("seven", "en-us", 175, 50)
        other = syn.synth("three", "en+klatt", 140, 35)
        again = syn.synth("seven", "en-us", 175, 50)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first.astype(np.float32) / 32768.0, x)
    z, _ = synthesize("seven", "en+f2", 175, 50)
    assert len(z) != len(x) or not np.array_equal(z, x)  # voices differ
    assert len(other) > 0.2 * sr
    with pytest.raises(ConfigError, match="voices"):
        synthesize("one", "no-such-voice", 175, 50)


def test_acquire_caches_and_verifies(raw, prepared):
    audio = raw / "audio"
    wavs = sorted(audio.glob("*.wav"))
    assert len(wavs) == 10 * 2  # digits x voices x rates x pitches
    assert (audio / "index.tsv").is_file()
    info = sf.info(str(wavs[0]))
    assert info.samplerate == 22050 and info.frames > 0.2 * 22050
    for w in wavs[:3]:
        x, _ = sf.read(str(w))
        assert np.sqrt(np.mean(x ** 2)) > 0.01, w  # not silent
    # re-run: nothing rewritten; a corrupted file is re-synthesized
    mtimes = {w: w.stat().st_mtime_ns for w in wavs}
    victim = wavs[5]
    good = victim.read_bytes()
    victim.write_bytes(good[:100])
    spec = get_dataset("avdigits")
    spec.acquire(spec.params(SMALL), raw, "generate", None)
    assert victim.read_bytes() == good
    assert all(w.stat().st_mtime_ns == t for w, t in mtimes.items() if w != victim)
    assert not list(audio.glob(".*tmp*"))


def test_shapes_dtypes_labels(prepared):
    meta = read_meta(prepared)
    assert meta["modalities"]["audio"]["shape"] == [1, 40, 40]
    assert meta["modalities"]["visual"]["shape"] == [1, 28, 28]
    assert sum(meta["splits"].values()) == 1797
    assert abs(meta["splits"]["train"] - 0.7 * 1797) <= 1
    for s in SPLITS:
        ds = PreparedDataset(prepared, s)
        assert ds.labels.dtype == np.int64 and ds.labels.min() >= 0 and ds.labels.max() <= 9
        assert set(np.unique(ds.labels)) == set(range(10))  # stratified: every digit in every split
        x, y = ds.load_all()
        assert x["audio"].shape == (len(ds), 1, 40, 40) and x["visual"].shape == (len(ds), 1, 28, 28)
        assert np.isfinite(x["audio"].numpy()).all() and np.isfinite(x["visual"].numpy()).all()
    _, x, y = PreparedDataset(prepared, "train")[0]
    assert x["audio"].dtype.is_floating_point and y.ndim == 0


def test_pairing_and_split_disjoint(prepared):
    images: dict[str, set[int]] = {}
    for s in SPLITS:
        ds = PreparedDataset(prepared, s)
        imgs = set()
        for sid, y in zip(ds.ids, ds.labels):
            m = _ID.match(str(sid))
            assert m, sid
            assert int(m.group(3)) == y, sid  # the paired utterance says the image's digit
            imgs.add(int(m.group(1)))
        images[s] = imgs
    assert not images["train"] & images["val"]
    assert not images["train"] & images["test"]
    assert not images["val"] & images["test"]
    assert len(images["train"] | images["val"] | images["test"]) == 1797


def test_labels_match_sklearn_digits(prepared):
    from sklearn.datasets import load_digits

    target = load_digits().target
    ds = PreparedDataset(prepared, "val")
    idx = np.array([int(_ID.match(str(s)).group(1)) for s in ds.ids])
    np.testing.assert_array_equal(target[idx], ds.labels)


def test_deterministic_and_seeded(raw, prepared, tmp_path):
    _build(raw, tmp_path / "again")
    a, b = _arrays(prepared), _arrays(tmp_path / "again")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    _build(raw, tmp_path / "seed1", seed=1)
    c = _arrays(tmp_path / "seed1")
    assert not np.array_equal(a["train/ids"], c["train/ids"])
    assert a["test/audio"].shape != c["test/audio"].shape or not np.array_equal(a["test/audio"], c["test/audio"])


def test_knobs_change_the_data(raw, tmp_path):
    meta = _build(raw, tmp_path / "k", image_pca_energy=1.0, audio_snr_db=None, image_size=16, n_repeats=2,
                  n_mels=32, n_frames=24)
    assert meta["modalities"]["visual"]["shape"] == [1, 16, 16]
    assert meta["modalities"]["audio"]["shape"] == [1, 32, 24]
    assert sum(meta["splits"].values()) == 2 * 1797
    assert meta["pca_components"] == 64
    ids = PreparedDataset(tmp_path / "k", "train").ids
    assert len({str(s).split("_")[0] for s in ids}) == len(ids)  # (image, repeat) pairs are unique


def test_avdigits_config_errors(raw, tmp_path):
    spec = get_dataset("avdigits")
    with pytest.raises(ConfigError, match="audio_source: fsdd"):
        spec.acquire(spec.params({}), raw, "local", tmp_path)
    with pytest.raises(ConfigError, match="audio_source"):
        spec.acquire(spec.params({"audio_source": "tts"}), raw, "generate", None)
    with pytest.raises(ConfigError, match="image_pca_energy"):
        spec.prepare(spec.params({**SMALL, "image_pca_energy": 0}), raw, tmp_path / "x")
    with pytest.raises(DataError, match="run `g2d acquire`"):
        spec.prepare(spec.params({**SMALL, "rates": [150]}), raw, tmp_path / "y")


def test_avdigits_fsdd_audio(tmp_path):
    rec = need_shared("fsdd", "recordings")
    spec = get_dataset("avdigits")
    p = spec.params({"audio_source": "fsdd"})
    spec.acquire(p, tmp_path / "raw", "local", rec)
    with atomic_dir(tmp_path / "prep") as tmp:
        meta = spec.prepare(p, tmp_path / "raw", tmp)
    assert meta["modalities"]["audio"]["shape"] == [1, 40, 40]
    for s in SPLITS:
        ds = PreparedDataset(tmp_path / "prep", s)
        for sid, y in zip(ds.ids, ds.labels):
            digit, _spk, take = str(sid).split("_", 1)[1].split("_")
            assert int(digit) == y
            assert (int(take) in FSDD_TEST_TAKES) == (s == "test"), sid


# ------------------------------------------------------------------------------------------
# tiny3 / tinyreg

def _prepare(name: str, out: Path, **over) -> dict:
    spec = get_dataset(name)
    p = spec.params(over)
    spec.acquire(p, out.parent / "raw", "generate", None)
    with atomic_dir(out) as tmp:
        return spec.prepare(p, out.parent / "raw", tmp)


def test_tiny3(tmp_path):
    spec = get_dataset("tiny3")
    assert spec.modalities == ("audio", "visual", "text") and spec.task == "classification"
    assert all(e["name"] == "transformer" and e["width"] == 32 for e in spec.default_encoders.values())
    meta = _prepare("tiny3", tmp_path / "a")
    assert meta["modalities"]["audio"]["shape"] == [10, 8]
    assert meta["modalities"]["visual"]["shape"] == [10, 12]
    assert meta["modalities"]["text"]["shape"] == [10, 16]
    assert meta["splits"] == {"train": 600, "val": 200, "test": 200}
    tr, te = PreparedDataset(tmp_path / "a", "train"), PreparedDataset(tmp_path / "a", "test")
    assert set(np.unique(tr.labels)) == {0, 1, 2, 3}
    # different informativeness: nearest-centroid accuracy ranks text > audio > visual
    acc = {}
    for m in spec.modalities:
        X, Xt = np.asarray(tr.arrays[m]).reshape(len(tr), -1), np.asarray(te.arrays[m]).reshape(len(te), -1)
        cent = np.stack([X[tr.labels == c].mean(0) for c in range(4)])
        acc[m] = float((((Xt[:, None] - cent[None]) ** 2).sum(-1).argmin(1) == te.labels).mean())
    assert acc["text"] > acc["audio"] > acc["visual"] > 0.3, acc
    _prepare("tiny3", tmp_path / "b")
    np.testing.assert_array_equal(np.load(tmp_path / "a/train/text.npy"), np.load(tmp_path / "b/train/text.npy"))
    _prepare("tiny3", tmp_path / "c", seed=3)
    assert not np.array_equal(np.load(tmp_path / "a/train/text.npy"), np.load(tmp_path / "c/train/text.npy"))
    with pytest.raises(ConfigError, match="confusion"):
        _prepare("tiny3", tmp_path / "d", confusion={"text": 0.1})
    with pytest.raises(ConfigError, match="dataset.source"):
        spec.acquire(spec.params({}), tmp_path / "raw", "local", tmp_path)


def test_tinyreg(tmp_path):
    spec = get_dataset("tinyreg")
    assert spec.task == "regression" and spec.modalities == ("image", "tabular") and spec.num_outputs == 1
    assert spec.default_encoders["image"] == {"name": "smallcnn"}
    assert spec.default_encoders["tabular"] == {"name": "mlp", "hidden": [64, 64]}
    meta = _prepare("tinyreg", tmp_path / "a")
    assert meta["modalities"]["image"]["shape"] == [3, 32, 32]
    assert meta["modalities"]["tabular"]["shape"] == [8]
    assert meta["tabular_columns"] == ["air_temperature", "relative_humidity", "precipitation", "solar_flux_density",
                                       "wind_speed", "barometric_pressure", "tilt_north_south", "tilt_west_east"]
    tr = PreparedDataset(tmp_path / "a", "train")
    y = tr.labels
    assert y.dtype == np.float32 and y.min() >= 0 and y.max() <= 1 and y.std() > 0.1
    img = np.asarray(tr.arrays["image"])
    assert img.min() >= 0 and img.max() <= 1
    tab = np.asarray(tr.arrays["tabular"])
    np.testing.assert_allclose(tab.mean(0), 0, atol=1e-4)
    # both modalities carry the target: brightness falls and humidity rises with moisture
    assert np.corrcoef(img.mean(axis=(1, 2, 3)), y)[0, 1] < -0.3
    assert np.corrcoef(tab[:, 1], y)[0, 1] > 0.3
    _prepare("tinyreg", tmp_path / "b")
    np.testing.assert_array_equal(np.load(tmp_path / "a/test/image.npy"), np.load(tmp_path / "b/test/image.npy"))
