"""Tiny real-format media files for the dataset tests (wav via soundfile, flv/mp4 via PyAV)."""

from __future__ import annotations

import csv
import hashlib
from fractions import Fraction
from pathlib import Path

import numpy as np

SHARED_CREMAD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cremad"


def write_wav(path: Path, seconds: float, sr: int = 16000, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = (0.5 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype="PCM_16")
    return x


def frame_value(i: int, offset: int = 0) -> int:
    """Grey level of frame ``i`` in :func:`write_video` (distinct for neighbouring frames)."""
    return (offset + 7 * i) % 250


def write_video(path: Path, n_frames: int, fps: int = 30, size: tuple[int, int] = (64, 48), offset: int = 0,
                codec: str | None = None, audio_seconds: float = 0.0, audio_sr: int = 16000,
                audio_freq: float = 1000.0) -> None:
    """A video whose frame ``i`` is uniform grey ``frame_value(i)`` (+ a sine audio track)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    codec = codec or ("flv" if path.suffix == ".flv" else "mpeg4")
    w, h = size
    with av.open(str(path), "w") as c:
        vs = c.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"qscale": "2"} if codec in ("flv", "mpeg4") else {}
        a_stream = None
        if audio_seconds > 0:
            a_stream = c.add_stream("aac", rate=audio_sr)
            a_stream.layout = "mono"
        for i in range(n_frames):
            img = np.full((h, w, 3), frame_value(i, offset), dtype=np.uint8)
            for pkt in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in vs.encode():
            c.mux(pkt)
        if a_stream is not None:
            n = int(audio_seconds * audio_sr)
            x = (0.5 * np.sin(2 * np.pi * audio_freq * np.arange(n) / audio_sr)).astype(np.float32)
            fs = a_stream.codec_context.frame_size or 1024
            for k, start in enumerate(range(0, n, fs)):
                chunk = x[start:start + fs]
                if len(chunk) < fs:
                    chunk = np.pad(chunk, (0, fs - len(chunk)))
                fr = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                fr.sample_rate = audio_sr
                fr.pts = start
                fr.time_base = Fraction(1, audio_sr)
                for pkt in a_stream.encode(fr):
                    c.mux(pkt)
            for pkt in a_stream.encode():
                c.mux(pkt)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cremad_demographics() -> dict[str, str]:
    """ActorID → Sex from the shared copy of VideoDemographics.csv (or a built-in fallback)."""
    p = SHARED_CREMAD / "VideoDemographics.csv"
    if p.is_file():
        with open(p, newline="") as f:
            return {r["ActorID"]: r["Sex"] for r in csv.DictReader(f)}
    return {"1001": "Male", "1005": "Male", "1011": "Male", "1002": "Female", "1003": "Female", "1004": "Female"}


def pick_cremad_clips(table: dict[str, str], per_actor: int = 2) -> list[str]:
    """Real clip names: 3 male + 3 female actors, ``per_actor`` clips each (train and test mixed)."""
    demo = cremad_demographics()
    males = sorted(a for a, s in demo.items() if s == "Male")[:3]
    females = sorted(a for a, s in demo.items() if s == "Female")[:3]
    out = []
    for a in males + females:
        mine = sorted(c for c in table if c.startswith(a + "_"))
        tests = [c for c in mine if table[c] == "test"][:1]
        trains = [c for c in mine if table[c] == "train"][: per_actor - len(tests)]
        out += tests + trains
    return sorted(out)


def make_cremad_raw(root: Path, clips: list[str]) -> dict[str, float]:
    """Write AudioWAV/<clip>.wav, VideoFlash/<clip>.flv and VideoDemographics.csv under ``root``.

    Clip k: audio of 0.8–2.3 s (the first is shorter than 1 s to exercise tiling), video of
    40–75 frames at 30 fps. Returns clip → audio seconds.
    """
    demo = cremad_demographics()
    secs = {}
    for k, c in enumerate(clips):
        s = 0.8 + 0.3 * k if k < 6 else 1.0 + 0.1 * k
        secs[c] = s
        write_wav(root / "AudioWAV" / f"{c}.wav", s, freq=300 + 50 * k, seed=k)
        write_video(root / "VideoFlash" / f"{c}.flv", n_frames=40 + 3 * k, offset=11 * k)
    actors = sorted({c.split("_")[0] for c in clips})
    (root / "VideoDemographics.csv").write_text(
        '"ActorID","Age","Sex","Race","Ethnicity"\n'
        + "".join(f'{a},30,"{demo[a]}","Caucasian","Not Hispanic"\n' for a in actors))
    return secs


def write_manifest(path: Path, root: Path, files: list[str], url_of) -> None:
    lines = ["path\turl\tsha256\tsize"]
    for f in files:
        p = root / f
        lines.append(f"{f}\t{url_of(f)}\t{sha256(p)}\t{p.stat().st_size}")
    path.write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------------ other datasets' raw files

def make_avmnist_raw(root: Path, n_train: int = 12, n_test: int = 5, seed: int = 0) -> None:
    """MultiBench AV-MNIST layout with 0..255 values."""
    rng = np.random.default_rng(seed)
    (root / "image").mkdir(parents=True)
    (root / "audio").mkdir()
    for split, n in (("train", n_train), ("test", n_test)):
        np.save(root / "image" / f"{split}_data.npy", rng.integers(0, 256, (n, 784)).astype(np.float64))
        np.save(root / "audio" / f"{split}_data.npy", rng.integers(0, 256, (n, 112, 112)).astype(np.float32))
        np.save(root / f"{split}_labels.npy", rng.integers(0, 10, n))


VGG_ROWS = [(f"yt{i:02d}x", str(10 * i), label, split) for i, (label, split) in enumerate(
    [("dog barking", "train"), ("playing piano", "train"), ("dog barking", "train"), ("rain", "train"),
     ("playing piano", "train"), ("rain", "train"), ("dog barking", "test"), ("rain", "test"),
     ("playing piano", "test")])]


def make_vggsound_raw(root: Path, skip_last: bool = True) -> None:
    """vggsound.csv + video/<id>_<start>.mp4 (both namings; the last clip absent when ``skip_last``)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "vggsound.csv").write_text("".join(",".join(r) + "\n" for r in VGG_ROWS))
    rows = VGG_ROWS[:-1] if skip_last else VGG_ROWS
    for i, (yt, start, _, _) in enumerate(rows):
        name = f"{yt}_{start}.mp4" if i % 2 else f"{yt}_{int(start):06d}.mp4"
        write_video(root / "video" / name, n_frames=75, fps=25, offset=13 * i, audio_seconds=2.0, audio_freq=1000.0)


def humor_split(rng: np.random.Generator, n: int, t: int = 8) -> dict:
    """One MultiBench affect split: front-padded text, a -inf, a NaN, an all-zero-text sample."""
    d = {"vision": rng.standard_normal((n, t, 371)), "audio": rng.standard_normal((n, t, 81)),
         "text": rng.standard_normal((n, t, 300)), "labels": rng.integers(0, 2, (n, 1)).astype(np.float64),
         "id": np.arange(n)}
    d["text"][:, :2] = 0
    d["audio"][0, 3, 5] = -np.inf
    d["vision"][1, 4, 7] = np.nan
    d["text"][2] = 0
    return d


def make_humor_pkl(root: Path, seed: int = 0) -> tuple[dict, str]:
    import pickle

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    data = {"train": humor_split(rng, 6), "valid": humor_split(rng, 4), "test": humor_split(rng, 5)}
    (root / "humor.pkl").write_bytes(pickle.dumps(data))
    return data, sha256(root / "humor.pkl")


IEMOCAP_LABELS = np.array(["neu", "ang", "sad", "hap", "exc", "fru"] * 4 + ["neutral"])
IEMOCAP_SESSIONS = np.repeat([1, 2, 3, 4, 5], 5)


def make_iemocap_npz(root: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    n = len(IEMOCAP_LABELS)
    root.mkdir(parents=True, exist_ok=True)
    audio = rng.standard_normal((n, 6, 10)).astype(np.float32)
    audio[0, 0, 0] = np.nan
    np.savez(root / "iemocap.npz", audio=audio, visual=rng.standard_normal((n, 6, 7)),
             text=rng.standard_normal((n, 6, 12)), labels=IEMOCAP_LABELS, session=IEMOCAP_SESSIONS,
             ids=np.array([f"Ses0{s}_utt{i}" for i, s in enumerate(IEMOCAP_SESSIONS)]))


MISME_COLUMNS = ("air_temperature", "relative_humidity", "precipitation", "solar_flux_density", "wind_speed",
                 "barometric_pressure", "tilt_north_south", "tilt_west_east")


def make_misme_raw(root: Path, n: int = 12, seed: int = 0) -> list[dict]:
    """labels.csv (image, vwc, 8 meteorological columns; one missing value) + images/*.jpg."""
    import pandas as pd
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        name = f"patch_{i:03d}.jpg"
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(root / "images" / name, quality=95)
        rows.append({"image": name, "vwc": 10 + 2.5 * i,
                     **{c: float(rng.normal(j, 1 + j)) for j, c in enumerate(MISME_COLUMNS)}})
    df = pd.DataFrame(rows)
    df.loc[3, "wind_speed"] = np.nan
    df.to_csv(root / "labels.csv", index=False)
    return rows
