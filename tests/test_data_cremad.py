"""CREMA-D end to end on a tiny fixture in the real layout (wav + flv + demographics):
download through a local HTTP server (normal, interrupted + Range resume, corrupted), local copy,
manual check, prepare (authors' and speaker-independent splits), the STFT recipe, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from g2d.data import cremad
from g2d.data.prepared import PreparedDataset, atomic_dir, read_meta
from g2d.data.registry import get_dataset
from g2d.errors import ConfigError, DataError

import _media_fixtures as M
from _http_fixture import serve_files

SPEC = get_dataset("cremad")


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    """Source tree + manifest of 12 real CREMA-D clip names (6 actors, some in the authors' test set)."""
    src = tmp_path_factory.mktemp("cremad_src")
    clips = M.pick_cremad_clips(cremad._split_table())
    secs = M.make_cremad_raw(src, clips)
    files = ["VideoDemographics.csv"] + [f"AudioWAV/{c}.wav" for c in clips] + [f"VideoFlash/{c}.flv" for c in clips]
    return {"src": src, "clips": clips, "secs": secs, "files": files}


def _params(manifest, **kw):
    return SPEC.params({"manifest": str(manifest), "progress": False, "val_fraction": 0.34, **kw})


def test_fixture_uses_authors_split(fixture):
    table = cremad._split_table()
    assert {table[c] for c in fixture["clips"]} == {"train", "test"}


def test_download_normal_interrupted_corrupted(fixture, tmp_path):
    src, files = fixture["src"], fixture["files"]
    with serve_files({f: (src / f).read_bytes() for f in files}) as srv:
        manifest = tmp_path / "m.tsv"
        M.write_manifest(manifest, src, files, srv.url)
        raw = tmp_path / "raw"
        wav0, flv1 = files[1], files[-1]
        srv.truncate[wav0] = 1   # connection dropped mid-body → resumed with Range
        srv.corrupt[flv1] = 1    # wrong bytes once → deleted and fetched again
        SPEC.acquire(_params(manifest, download_workers=2, retries=3), raw, "download", None)
        for f in files:
            assert (raw / f).read_bytes() == (src / f).read_bytes()
        assert [s for _, _, s in srv.requests_for(wav0)] == [200, 206]
        assert srv.requests_for(wav0)[1][1].startswith("bytes=")
        assert len(srv.requests_for(flv1)) == 2
        n = len(srv.log)
        SPEC.acquire(_params(manifest), raw, "download", None)  # all verified: no request
        assert len(srv.log) == n

        # a file that stays corrupted on the server → one line naming URL and file
        (raw / flv1).unlink()
        srv.corrupt[flv1] = 99
        with pytest.raises(DataError) as ei:
            SPEC.acquire(_params(manifest, retries=1), raw, "download", None)
        msg = str(ei.value)
        assert srv.url(flv1) in msg and str(raw / flv1) in msg and "\n" not in msg


def test_local_and_manual_sources(fixture, tmp_path):
    src, files = fixture["src"], fixture["files"]
    manifest = tmp_path / "m.tsv"
    M.write_manifest(manifest, src, files, lambda f: "")
    raw = tmp_path / "raw"
    with pytest.raises(DataError) as ei:  # nothing placed: says which files and where
        SPEC.acquire(_params(manifest), raw, "manual", None)
    msg = str(ei.value)
    assert "missing" in msg and str(raw) in msg and "AudioWAV" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="source_dir"):
        SPEC.acquire(_params(manifest), raw, "local", None)
    SPEC.acquire(_params(manifest), raw, "local", src)
    assert all((raw / f).is_file() for f in files)
    SPEC.acquire(_params(manifest), raw, "manual", None)
    (raw / files[2]).unlink()  # raw files are hard links to the source: replace, never write through
    (raw / files[2]).write_bytes(b"corrupt")
    with pytest.raises(DataError, match="corrupt"):
        SPEC.acquire(_params(manifest), raw, "manual", None)


def _direct_log_spec(wav_path, sr_out=22050, seconds=3.0, n_fft=512, hop=353):
    """The recipe computed independently: scipy resample + tile + clip + scipy.signal.stft."""
    import soundfile as sf

    x, sr = sf.read(str(wav_path), dtype="float64")
    y = signal.resample_poly(x, 441, 320) if sr == 16000 else x
    n = int(seconds * sr_out)
    y = np.tile(y, int(np.ceil(n / len(y))) + 3)[:n]
    y = np.clip(y, -1, 1)
    y = np.pad(y, n_fft // 2, mode="reflect")
    win = signal.get_window("hann", n_fft, fftbins=True)
    _, _, z = signal.stft(y, window=win, nperseg=n_fft, noverlap=n_fft - hop, boundary=None, padded=False,
                          detrend=False, return_onesided=True)
    z = z * win.sum()  # scipy scales by 1/sum(window)
    return np.log(np.abs(z) + 1e-7)


def test_log_stft_matches_scipy():
    rng = np.random.default_rng(1)
    y = np.clip(0.3 * rng.standard_normal(66150), -1, 1)
    ours = cremad.log_stft(y, 512, 353)
    assert ours.shape == (257, 188)
    win = signal.get_window("hann", 512, fftbins=True)
    _, _, z = signal.stft(np.pad(y, 256, mode="reflect"), window=win, nperseg=512, noverlap=512 - 353,
                          boundary=None, padded=False, detrend=False)
    np.testing.assert_allclose(ours, np.log(np.abs(z * win.sum()) + 1e-7), atol=1e-4)


def _prepare(raw, out, params):
    with atomic_dir(out) as tmp:
        SPEC.prepare(params, raw, tmp)
    return read_meta(out)


def test_prepare_authors_split(fixture, tmp_path):
    src, clips = fixture["src"], fixture["clips"]
    manifest = tmp_path / "m.tsv"
    M.write_manifest(manifest, src, fixture["files"], lambda f: "")
    params = _params(manifest, dtype="float32")
    meta = _prepare(src, tmp_path / "p1", params)
    table = cremad._split_table()
    n_train = sum(table[c] == "train" for c in clips)
    n_val = int(round(0.34 * n_train))
    assert meta["splits"] == {"train": n_train - n_val, "val": n_val, "test": len(clips) - n_train}
    assert meta["classes"] == ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"]
    assert meta["modalities"]["audio"]["shape"] == [1, 257, 188]
    assert meta["modalities"]["visual"]["shape"] == [1, 3, 224, 224]
    assert not (tmp_path / "p1" / cremad.SCRATCH).exists()
    seen = []
    for s in ("train", "val", "test"):
        ds = PreparedDataset(tmp_path / "p1", s)
        ids = [str(i) for i in ds.ids]
        seen += ids
        assert all((table[c] == "test") == (s == "test") for c in ids)
        for i, c in enumerate(ids):
            assert ds.labels[i] == cremad.CLASSES.index(c.split("_")[2])
        _, x, y = ds[0]
        assert x["audio"].dtype.__str__() == "torch.float32" and tuple(x["visual"].shape) == (1, 3, 224, 224)
    assert sorted(seen) == sorted(clips)

    # audio equals the independent recipe computation (1e-4)
    ds = PreparedDataset(tmp_path / "p1", "test")
    for i, c in enumerate(map(str, ds.ids)):
        np.testing.assert_allclose(ds.arrays["audio"][i, 0], _direct_log_spec(src / "AudioWAV" / f"{c}.wav"), atol=1e-4)
    # visual: the 1-fps frame at 0.5 s (frame 14 of 30 fps), squashed to 224², ImageNet-normalised
    k = clips.index(str(ds.ids[0]))
    grey = M.frame_value(14, offset=11 * k) / 255.0
    expect = (grey - cremad.IMAGENET_MEAN) / cremad.IMAGENET_STD
    got = ds.arrays["visual"][0, 0].mean(axis=(1, 2))
    np.testing.assert_allclose(got, expect, atol=4 / 255 / 0.224)

    # determinism: a second run gives identical arrays
    _prepare(src, tmp_path / "p2", params)
    for s in ("train", "val", "test"):
        for f in ("audio", "visual", "labels", "ids"):
            assert np.array_equal(np.load(tmp_path / "p1" / s / f"{f}.npy"), np.load(tmp_path / "p2" / s / f"{f}.npy"))


def test_prepare_speaker_independent(fixture, tmp_path):
    manifest = tmp_path / "m.tsv"
    M.write_manifest(manifest, fixture["src"], fixture["files"], lambda f: "")
    params = _params(manifest, split="speaker_independent", num_frames=2, frame_size=32, crop_size=24)
    meta = _prepare(fixture["src"], tmp_path / "p", params)
    actors = meta["split_actors"]
    assert not (set(actors["train"]) & set(actors["test"]) or set(actors["train"]) & set(actors["val"])
                or set(actors["val"]) & set(actors["test"]))
    assert len(actors["test"]) == 2 and len(actors["val"]) == 2  # one per sex each
    for s in ("train", "val", "test"):
        ids = np.load(tmp_path / "p" / s / "ids.npy")
        assert {str(i).split("_")[0] for i in ids} == set(actors[s])
    assert meta["modalities"]["visual"]["shape"] == [2, 3, 32, 32]
    aug = SPEC.train_transforms(params)["visual"]
    import torch

    out = aug(torch.from_numpy(np.load(tmp_path / "p" / "train" / "visual.npy")[0].astype(np.float32)))
    assert tuple(out.shape) == (2, 3, 24, 24)


def test_full_split_sizes_and_actor_overlap():
    """The packaged authors' split (6 698 / 744) over the packaged manifest; actors in both."""
    table = cremad._split_table()
    rows = cremad._manifest_rows({"manifest": None, "base_url": None})
    clips = [r["path"][len("AudioWAV/"):-4] for r in rows if r["path"].startswith("AudioWAV/")]
    assert len(clips) == 7442
    sp = cremad.authors_split(clips, table, 0.1, 999)
    assert {k: len(v) for k, v in sp.items()} == {"train": 6028, "val": 670, "test": 744}
    assert len({c[:4] for c in sp["train"]} & {c[:4] for c in sp["test"]}) == 91
    assert cremad.authors_split(clips, table, 0.1, 999) == sp
    demo = M.cremad_demographics()
    if len(demo) == 91:
        si, actors = cremad.speaker_independent_split(clips, demo, 0.1, 0.1, 999)
        assert sum(map(len, actors.values())) == 91 and len(actors["test"]) == 9
        assert not set(actors["test"]) & set(actors["train"])
