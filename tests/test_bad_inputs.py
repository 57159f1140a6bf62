"""Bad inputs: every case ends in ONE line ``g2d: <message naming the input>`` on stderr, exit
status 2, no traceback — through the CLI (``g2d.cli.main`` in-process, and once as a real
subprocess) and the real readers (CREMA-D / FSDD wav readers, CREMA-D acquire/prepare, the
prepared-format writer and loader, config validation)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import _media_fixtures as M
import _proc as P
from conftest import _register_synth
from g2d.cli import main
from g2d.data import avmnist_fsdd, cremad
from g2d.data.prepared import write_prepared
from g2d.data.registry import DatasetSpec, register
from g2d.errors import DataError


def _cli(argv, capsys) -> str:
    """Run the CLI; assert exit 2, no traceback, and that the LAST stderr line is the only `g2d: ` line."""
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errs = [ln for ln in lines if ln.startswith("g2d: ")]
    assert len(errs) == 1 and lines[-1] == errs[0], err
    assert "\n" not in errs[0]
    return errs[0]


def _cfg_file(tmp: Path, data: dict) -> Path:
    p = tmp / "cfg.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


# ---- audio files through a dataset whose prepare uses the real wav readers ---------------------------

def _wav_prepare(params, raw, out):
    files = sorted(Path(raw).glob("*.wav"))
    feats = []
    for f in files:
        if params["reader"] == "cremad":
            x, _ = cremad.read_wav(f)
        else:  # FSDD recordings are 8 kHz
            x = avmnist_fsdd.read_wav(f, rate=8000)
        feats.append([float(np.mean(x)), float(np.std(x)), float(len(x))])
    x = np.asarray(feats, dtype=np.float32)
    n = len(files)
    sl = {"train": slice(0, n - 2), "val": slice(n - 2, n - 1), "test": slice(n - 1, n)}
    return write_prepared(out, dataset="wavset", task="classification", classes=["0", "1"],
                          splits={s: {"audio": x[i], "audio2": x[i]} for s, i in sl.items()},
                          labels={s: np.arange(n)[i] % 2 for s, i in sl.items()},
                          ids={s: np.array([f.stem for f in files])[i] for s, i in sl.items()}, dtype="float32")


register(DatasetSpec(name="wavset", task="classification", modalities=("audio", "audio2"), classes=("0", "1"),
                     default_encoders={m: {"name": "mlp"} for m in ("audio", "audio2")},
                     acquire=lambda *a: None, prepare=_wav_prepare, default_params={"reader": "cremad"},
                     description="test-only: wav files read with the real readers"))


@pytest.fixture
def wav_dir(tmp_path):
    raw = tmp_path / "raw"
    for k in range(5):
        M.write_wav(raw / f"clip{k}.wav", 0.3, sr=16000, freq=200 + 40 * k, seed=k)
    return raw


def _wav_cfg(tmp, raw, reader="cremad"):
    return _cfg_file(tmp, {"dataset": {"name": "wavset", "raw_dir": str(raw), "prepared_dir": str(tmp / "prep"),
                                       "params": {"reader": reader}}})


def test_good_wavs_prepare_fine(wav_dir, tmp_path, capsys):
    assert main(["prepare", "-c", str(_wav_cfg(tmp_path, wav_dir))]) == 0


def test_truncated_wav(wav_dir, tmp_path, capsys):
    f = wav_dir / "clip2.wav"
    f.write_bytes(f.read_bytes()[:3000])  # header intact, samples cut (libsndfile alone reads it silently)
    line = _cli(["prepare", "-c", _wav_cfg(tmp_path, wav_dir)], capsys)
    assert line.startswith(f"g2d: {f}: truncated wav"), line
    with pytest.raises(DataError, match="truncated wav"):
        cremad.read_wav(f)


def test_zero_length_audio(wav_dir, tmp_path, capsys):
    import soundfile as sf
    f = wav_dir / "clip1.wav"
    sf.write(str(f), np.zeros(0, np.float32), 16000, subtype="PCM_16")  # valid header, no samples
    assert _cli(["prepare", "-c", _wav_cfg(tmp_path, wav_dir)], capsys) == f"g2d: {f}: audio file has no samples"


def test_empty_audio_file(wav_dir, tmp_path, capsys):
    f = wav_dir / "clip0.wav"
    f.write_bytes(b"")
    line = _cli(["prepare", "-c", _wav_cfg(tmp_path, wav_dir)], capsys)
    assert line.startswith(f"g2d: {f}: cannot read audio"), line


def test_wrong_sample_rate(wav_dir, tmp_path, capsys):
    line = _cli(["prepare", "-c", _wav_cfg(tmp_path, wav_dir, reader="fsdd")], capsys)
    assert line == f"g2d: {wav_dir / 'clip0.wav'}: sample rate 16000 Hz, expected 8000 Hz"


# ---- CREMA-D: the real acquire/prepare on a tiny tree in the real layout -------------------------------

@pytest.fixture(scope="module")
def cremad_tree(tmp_path_factory):
    src = tmp_path_factory.mktemp("cremad_bad")
    clips = M.pick_cremad_clips(cremad._split_table())
    M.make_cremad_raw(src, clips)
    return src, clips


def _cremad_case(tmp, tree, break_it, manifest_from_broken: bool):
    """Copy the tree to ``tmp/raw``, damage it, write the checksum manifest from the intact tree
    (the usual case) or from the damaged copy (damage the checksums cannot see)."""
    src, clips = tree
    raw = tmp / "raw"
    shutil.copytree(src, raw)
    files = ["VideoDemographics.csv"] + [f"AudioWAV/{c}.wav" for c in clips] + [f"VideoFlash/{c}.flv" for c in clips]
    break_it(raw)
    manifest = tmp / "m.tsv"
    M.write_manifest(manifest, raw if manifest_from_broken else src, files, lambda f: "")
    return _cfg_file(tmp, {"dataset": {"name": "cremad", "source": "manual", "raw_dir": str(raw),
                                       "prepared_dir": str(tmp / "prep"),
                                       "params": {"manifest": str(manifest), "progress": False, "val_fraction": 0.34,
                                                  "frame_size": 32, "crop_size": 32}}})


def test_cremad_missing_frames_folder(cremad_tree, tmp_path, capsys):
    cfg = _cremad_case(tmp_path, cremad_tree, lambda raw: shutil.rmtree(raw / "VideoFlash"), False)
    line = _cli(["prepare", "-c", cfg], capsys)
    assert f"VideoFlash/{cremad_tree[1][0]}.flv: missing" in line and "CREMA-D files missing or corrupt" in line, line


def test_cremad_missing_video_reader():
    with pytest.raises(DataError, match=r"nowhere\.flv: cannot decode video"):
        cremad.decode_video_frames("/nonexistent/nowhere.flv", 1)


def test_cremad_truncated_wav_past_the_checksums(cremad_tree, tmp_path, capsys):
    """A truncated wav whose manifest was made from the truncated copy: the reader itself catches it."""
    victim = cremad_tree[1][3]

    def cut(raw):
        f = raw / "AudioWAV" / f"{victim}.wav"
        f.write_bytes(f.read_bytes()[:5000])

    cfg = _cremad_case(tmp_path, cremad_tree, cut, True)
    line = _cli(["prepare", "-c", cfg], capsys)
    assert line.startswith(f"g2d: {tmp_path / 'raw' / 'AudioWAV' / victim}.wav: truncated wav"), line
    assert not (tmp_path / "prep").exists()


# ---- the prepared-format writer: labels, NaN, misaligned modalities, duplicate ids --------------------

def _bad_prepare(params, raw, out):
    rng = np.random.default_rng(0)
    n = {"train": 20, "val": 6, "test": 6}
    splits, labels, ids = {}, {}, {}
    off = 0
    for s, k in n.items():
        a, b = rng.standard_normal((k, 4)).astype(np.float32), rng.standard_normal((k, 3)).astype(np.float32)
        y = rng.integers(0, 3, k)
        sid = np.array([f"x{off + i}" for i in range(k)])
        off += k
        if s == "train":
            fault = params["fault"]
            if fault == "label":
                y[5] = 7
            elif fault == "nan":
                a[3, 1] = np.nan
            elif fault == "rows":
                b = b[:-1]
            elif fault == "dup_ids":
                sid[2] = sid[1]
        splits[s], labels[s], ids[s] = {"a": a, "b": b}, y, sid
    return write_prepared(out, dataset="badset", task="classification", classes=["0", "1", "2"], splits=splits,
                          labels=labels, ids=ids, dtype="float32")


register(DatasetSpec(name="badset", task="classification", modalities=("a", "b"), classes=("0", "1", "2"),
                     default_encoders={"a": {"name": "mlp"}, "b": {"name": "mlp"}}, acquire=lambda *a: None,
                     prepare=_bad_prepare, default_params={"fault": "none"}, description="test-only"))


@pytest.mark.parametrize("fault,expected", [
    ("label", "g2d: badset/train: label outside the class list (range 0..7, 3 classes)"),
    ("nan", "g2d: badset/train/a: contains NaN or Inf (or values too large for float32)"),
    ("rows", "g2d: badset/train/b: 19 rows for 20 labels (mismatched sample ids between modalities)"),
    ("dup_ids", "g2d: badset/train: sample ids are not unique across splits"),
])
def test_bad_prepared_content(fault, expected, tmp_path, capsys):
    cfg = _cfg_file(tmp_path, {"dataset": {"name": "badset", "raw_dir": str(tmp_path / "raw"),
                                           "prepared_dir": str(tmp_path / "prep"), "params": {"fault": fault}}})
    assert _cli(["prepare", "-c", cfg], capsys) == expected
    assert not (tmp_path / "prep").exists() and not list(tmp_path.glob("prep.tmp-*"))


def test_tampered_prepared_modality_rows(tmp_path, capsys):
    """A prepared dir whose modality file no longer matches the labels (e.g. replaced by hand)."""
    _register_synth("synth2", {"a": 12, "b": 10})
    cfg = P.write_cfg(tmp_path)
    assert main(["prepare", "-c", str(cfg)]) == 0
    f = tmp_path / "prep" / "train" / "b.npy"
    np.save(f, np.load(f)[:-3])
    line = _cli(["train-teacher", "-c", cfg, "--modality", "b", "--out", tmp_path / "t"], capsys)
    assert line == f"g2d: {f}: 93 rows but 96 labels"


# ---- config values and names --------------------------------------------------------------------------

@pytest.mark.parametrize("override,key", [("train.lr=.nan", "train.lr"), ("g2d.alpha=.inf", "g2d.alpha"),
                                          ("g2d.temperature=-.inf", "g2d.temperature")])
def test_non_finite_config_override(override, key, capsys):
    line = _cli(["validate", "--set", override], capsys)
    assert line.startswith(f"g2d: <config>: key '{key}' must be a finite number"), line


def test_non_finite_config_file(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  lr: .inf\n")
    assert _cli(["validate", "-c", cfg], capsys) == f"g2d: {cfg}: key 'train.lr' must be a finite number, got inf"


def test_unknown_method_argument(capsys, tmp_path):
    line = _cli(["train-student", "--method", "g2dd", "--out", tmp_path], capsys)
    assert line.startswith("g2d: --method: unknown name 'g2dd' (known: g2d,"), line


def test_unknown_fusion_argument(capsys, tmp_path):
    line = _cli(["train-student", "--method", "g2d", "--fusion", "latee", "--out", tmp_path], capsys)
    assert line.startswith("g2d: --fusion: unknown name 'latee' (known: "), line


@pytest.mark.parametrize("override,msg", [
    ("study.methods=[joint,nope]", "g2d: <config>: key 'study.methods': unknown name 'nope'"),
    ("model.fusion=nope", "g2d: <config>: key 'model.fusion': unknown name 'nope'"),
    ("study.fusions=[nope]", "g2d: <config>: key 'study.fusions': unknown name 'nope'"),
    ("dataset.name=nope", "g2d: <config>: key 'dataset.name': unknown dataset 'nope'"),
])
def test_unknown_names_in_config(override, msg, capsys):
    assert _cli(["validate", "--set", override], capsys).startswith(msg)


def test_real_subprocess_prints_exactly_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "g2d.cli", "validate", "--set", "train.lr=.nan"], capture_output=True,
                       text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 2
    assert r.stderr == "g2d: <config>: key 'train.lr' must be a finite number, got nan\n"
    assert r.stdout == ""


def test_fsdd_reader_rejects_truncated_and_empty_wavs(tmp_path):
    """The FSDD/avdigits wav reader: a truncated copy and a zero-length file are one-line DataErrors."""
    import numpy as np
    import soundfile as sf

    from g2d.data.avmnist_fsdd import read_wav
    from g2d.errors import DataError

    good = tmp_path / "0_theo_1.wav"
    sf.write(good, (np.sin(np.arange(8000) / 5) * 0.3).astype(np.float32), 8000, subtype="PCM_16")
    assert read_wav(good, 8000).shape == (8000,)
    cut = tmp_path / "0_theo_2.wav"
    cut.write_bytes(good.read_bytes()[: 44 + 4000])
    with pytest.raises(DataError, match="0_theo_2.wav: truncated"):
        read_wav(cut, 8000)
    empty = tmp_path / "0_theo_3.wav"
    sf.write(empty, np.zeros(0, np.float32), 8000, subtype="PCM_16")
    with pytest.raises(DataError, match="0_theo_3.wav: zero-length audio"):
        read_wav(empty, 8000)
    with pytest.raises(DataError, match="sample rate 8000 Hz, expected 16000"):
        read_wav(good, 16000)
