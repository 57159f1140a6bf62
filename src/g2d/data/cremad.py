"""CREMA-D: 7 442 clips of 91 actors, 6 emotions, audio (wav) + video (flv).

Raw layout (the layout of the public repository CheyneyComputerScience/CREMA-D)::

    <raw_dir>/AudioWAV/<clip>.wav        16 kHz mono (7 442 files)
    <raw_dir>/VideoFlash/<clip>.flv      480×360, 30 fps (7 442 files)
    <raw_dir>/VideoDemographics.csv      ActorID, Age, Sex, Race, Ethnicity (91 actors)

``<clip>`` is ``<actor>_<sentence>_<emotion>_<level>``, e.g. ``1001_DFA_ANG_XX``. The media are Git
LFS objects; ``source: download`` fetches them from ``media.githubusercontent.com`` and verifies
every file against the packaged manifest ``g2d/data/checksums/cremad.tsv`` (SHA-256 + size from
the LFS pointers).

Preprocessing (the authors' ``CramedDataset``, done once here):

* audio: wav resampled to 22 050 Hz (polyphase; the authors' ``librosa.load(sr=22050)``), tiled
  to 3 s, clipped to [-1, 1], STFT with ``n_fft=512, hop=353``, periodic Hann window,
  ``center=True`` with reflect padding (librosa < 0.10 defaults), ``log(|S| + 1e-7)`` →
  ``(1, 257, 188)``;
* visual: frames decoded with PyAV at the 1-fps positions the authors extracted
  (the middle of each second), the first ``num_frames`` of them, each resized to
  ``frame_size × frame_size`` (``transforms.Resize((224, 224))``, i.e. the authors' test
  transform), scaled to [0, 1] and normalised with ImageNet mean/std → ``(T, 3, 224, 224)``.
  Training augmentation (``dataset.augment: true``) is the authors' ``RandomResizedCrop(224)``
  + horizontal flip, applied to the stored frame (see :class:`FrameAugment`).

Splits: ``split: authors`` reproduces the authors' csv (6 698 train / 744 test, packaged as
``checksums/cremad_split.tsv``) and carves ``val_fraction`` of train (seeded) as validation.
All 91 actors appear in both train and test of that split; ``split: speaker_independent``
assigns whole actors (from ``VideoDemographics.csv``, stratified by sex, seeded) to
train/val/test so no speaker is shared.

The audio/video helpers here (:func:`read_wav`, :func:`resample`, :func:`log_stft`,
:func:`decode_video_frames`, :func:`frames_to_array`, :func:`read_av_audio`) are reused by
the VGGSound module.
"""

from __future__ import annotations

import csv
import math
import shutil
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from ..errors import ConfigError, DataError
from .download import fetch, link_or_copy, load_manifest, packaged_manifest, verify_files
from .prepared import open_memmap_reserved, write_prepared
from .registry import DatasetSpec, register

__all__ = [
    "CLASSES", "IMAGENET_MEAN", "IMAGENET_STD", "check_wav_complete", "read_wav", "resample", "tile_to", "log_stft",
    "audio_features", "decode_video_frames", "select_frame_indices", "frames_to_array",
    "read_av_audio", "FrameAugment", "authors_split", "speaker_independent_split",
    "SCRATCH", "map_ordered",
]

CLASSES = ("NEU", "HAP", "SAD", "FEA", "DIS", "ANG")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
MEDIA_URL = "https://media.githubusercontent.com/media/CheyneyComputerScience/CREMA-D/master/"
#: scratch folder for memory-mapped arrays inside the prepare temp dir (removed before return)
SCRATCH = ".scratch"


# ============================================================================================
# audio


def check_wav_complete(path: str | Path) -> None:
    """DataError if a RIFF/WAVE file is shorter than its ``data`` chunk says (a truncated copy or
    download): libsndfile reads such a file without complaint and returns the samples that are
    there. Other containers are left to the decoder."""
    import struct

    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return
            pos = 12
            while pos + 8 <= size:
                f.seek(pos)
                cid, n = struct.unpack("<4sI", f.read(8))
                if cid == b"data":
                    if n != 0xFFFFFFFF and pos + 8 + n > size:
                        raise DataError(f"{path}: truncated wav (its header declares {n} bytes of samples, "
                                        f"the file holds {size - pos - 8})")
                    return
                pos += 8 + n + (n & 1)
    except OSError as exc:
        raise DataError(f"{path}: cannot read audio ({exc.strerror or exc})") from None


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono float64 samples in [-1, 1] and the sample rate (channels averaged)."""
    import soundfile as sf

    check_wav_complete(path)
    try:
        x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    except Exception as exc:  # soundfile raises RuntimeError/LibsndfileError subclasses
        raise DataError(f"{path}: cannot read audio ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if x.shape[0] == 0:
        raise DataError(f"{path}: audio file has no samples")
    return x.mean(axis=1), int(sr)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling (scipy ``resample_poly``; exact rational ratio), in float64."""
    x = np.asarray(x, dtype=np.float64)
    if sr_in == sr_out:
        return x
    from scipy.signal import resample_poly

    r = Fraction(sr_out, sr_in)
    return resample_poly(x, r.numerator, r.denominator)


def tile_to(x: np.ndarray, n: int, repeats: int | None = None) -> np.ndarray:
    """Repeat ``x`` end to end and cut to ``n`` samples.

    ``repeats`` mirrors the authors' ``np.tile(x, repeats)[:n]``; more copies are added only when
    the clip is too short for that to reach ``n`` (the authors' code would then return fewer
    samples and a different spectrogram width).
    """
    if len(x) == 0:
        raise ValueError("empty signal")
    k = max(repeats or 1, math.ceil(n / len(x)))
    return np.tile(x, k)[:n]


def log_stft(y: np.ndarray, n_fft: int, hop: int, pad_mode: str = "reflect", center: bool = True,
             eps: float = 1e-7) -> np.ndarray:
    """``log(|STFT(y)| + eps)`` as librosa computes it: periodic Hann window, frames centred
    (``n_fft // 2`` padding with ``pad_mode``), ``1 + n_fft // 2`` bins × ``1 + len // hop`` frames."""
    y = np.asarray(y, dtype=np.float64)
    if center:
        y = np.pad(y, n_fft // 2, mode=pad_mode)
    if len(y) < n_fft:
        raise ValueError(f"signal of {len(y)} samples is shorter than n_fft={n_fft}")
    n_frames = 1 + (len(y) - n_fft) // hop
    win = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # scipy get_window('hann', fftbins=True)
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop][:n_frames]
    spec = np.fft.rfft(frames * win, axis=-1).T
    return np.log(np.abs(spec) + eps).astype(np.float32)


def audio_features(x: np.ndarray, sr: int, *, sample_rate: int, seconds: float, n_fft: int, hop: int,
                   pad_mode: str = "reflect", tile_repeats: int | None = None, offset: int = 0) -> np.ndarray:
    """The authors' recipe: resample → tile → window ``[offset, offset + seconds)`` → clip to
    [-1, 1] → log-magnitude STFT. Returns ``(1, 1 + n_fft // 2, frames)`` float32."""
    y = resample(x, sr, sample_rate)
    n = int(round(seconds * sample_rate))
    y = tile_to(y, offset + n, tile_repeats)[offset:offset + n]
    y = np.clip(y, -1.0, 1.0)
    return log_stft(y, n_fft, hop, pad_mode=pad_mode)[None]


def read_av_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode the first audio stream of a media file with PyAV as mono float32 at ``sample_rate``."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise DataError(f"{path}: no audio stream")
            stream = container.streams.audio[0]
            res = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            chunks: list[np.ndarray] = []
            for frame in container.decode(stream):
                for out in res.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in res.resample(None):  # flush
                chunks.append(out.to_ndarray().reshape(-1))
    except DataError:
        raise
    except Exception as exc:  # av.error.* and OSError
        raise DataError(f"{path}: cannot decode audio ({type(exc).__name__}: {exc})") from None
    if not chunks or sum(len(c) for c in chunks) == 0:
        raise DataError(f"{path}: audio stream has no samples")
    return np.concatenate(chunks).astype(np.float32)


# ============================================================================================
# video


def select_frame_indices(total: int, fps: float, count: int) -> list[int]:
    """0-based indices of the frames the authors' 1-fps extraction saves, first ``count``.

    Their ``video2frame-1fps.py`` takes, for second ``i``, the (1-based) frame
    ``round((i + 0.5) * fps)``; positions past the end wrap inside the last second.
    """
    if total <= 0:
        raise ValueError("video without frames")
    last = int(total % fps) or int(round(fps))
    last = min(last, total)
    last_start = total - last
    out = []
    for i in range(count):
        pos = int(round((i + 0.5) * fps))
        if pos > total:
            pos = last_start + 1 + ((pos - last_start - 1) % last)
        out.append(min(max(pos, 1), total) - 1)
    return out


def decode_video_frames(path: str | Path, count: int) -> list[np.ndarray]:
    """Decode a video (any container PyAV/FFmpeg reads: flv, mp4, ...) and return ``count`` RGB
    uint8 frames ``(H, W, 3)`` at the authors' 1-fps positions (:func:`select_frame_indices`)."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else 25.0
            frames = list(container.decode(stream))
            if not frames:
                raise DataError(f"{path}: video stream has no frames")
            idx = select_frame_indices(len(frames), fps, count)
            return [frames[i].to_ndarray(format="rgb24") for i in idx]
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path}: cannot decode video ({type(exc).__name__}: {exc})") from None


def frames_to_array(frames: Sequence[np.ndarray], size: int, mode: str = "squash") -> np.ndarray:
    """RGB uint8 frames → ``(T, 3, size, size)`` float32, ImageNet-normalised.

    ``mode="squash"``: ``Resize((size, size))`` of the whole frame (the authors' test transform);
    ``mode="center"``: shorter side to ``size`` then a centred ``size × size`` crop.
    Resizing is PIL bilinear, as torchvision's ``Resize`` does on PIL images.
    """
    from PIL import Image

    out = np.empty((len(frames), 3, size, size), dtype=np.float32)
    for t, f in enumerate(frames):
        img = Image.fromarray(np.ascontiguousarray(f[..., :3])).convert("RGB")
        if mode == "squash":
            img = img.resize((size, size), Image.BILINEAR)
        elif mode == "center":
            w, h = img.size
            s = size / min(w, h)
            nw, nh = max(size, int(round(w * s))), max(size, int(round(h * s)))
            img = img.resize((nw, nh), Image.BILINEAR)
            left, top = (nw - size) // 2, (nh - size) // 2
            img = img.crop((left, top, left + size, top + size))
        else:
            raise ValueError(f"unknown resize mode {mode!r}")
        a = np.asarray(img, dtype=np.float32) / 255.0
        out[t] = ((a - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)
    return out


class FrameAugment:
    """Training augmentation of stored frames ``(T, 3, H, W)`` (or ``(3, H, W)``):
    ``RandomResizedCrop(size)`` + ``RandomHorizontalFlip()``, drawn independently per frame as
    the authors' per-frame ``transform(img)`` does. Picklable (DataLoader workers)."""

    def __init__(self, size: int = 224):
        self.size = int(size)
        self._t: Callable | None = None

    def _transform(self) -> Callable:
        if self._t is None:
            from torchvision import transforms

            self._t = transforms.Compose([
                transforms.RandomResizedCrop(self.size, antialias=True),
                transforms.RandomHorizontalFlip(),
            ])
        return self._t

    def __getstate__(self) -> dict:
        return {"size": self.size, "_t": None}

    def __call__(self, x):
        import torch

        t = self._transform()
        if x.dim() == 3:
            return t(x)
        return torch.stack([t(f) for f in x])


# ============================================================================================
# splits and files


def authors_split(clips: Iterable[str], table: dict[str, str], val_fraction: float, seed: int) -> dict[str, list[str]]:
    """Authors' train/test assignment (``table``: clip → "train"/"test"); ``val_fraction`` of
    the train clips (a seeded permutation of the sorted names) becomes validation."""
    clips = sorted(clips)
    unknown = [c for c in clips if c not in table]
    if unknown:
        raise DataError(f"cremad: clip {unknown[0]} (and {len(unknown) - 1} more) is not in the authors' split table")
    train = [c for c in clips if table[c] == "train"]
    test = [c for c in clips if table[c] == "test"]
    rng = np.random.default_rng(seed)
    perm = [train[i] for i in rng.permutation(len(train))]
    n_val = int(round(val_fraction * len(train)))
    return {"train": sorted(perm[n_val:]), "val": sorted(perm[:n_val]), "test": test}


def speaker_independent_split(clips: Iterable[str], actor_sex: dict[str, str], val_fraction: float,
                              test_fraction: float, seed: int) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Whole actors to train/val/test, stratified by sex, seeded. Returns (clips, actors) per split.

    Within each sex group (sorted actor ids, seeded permutation), ``round(test_fraction · n)``
    actors go to test and ``round(val_fraction · n)`` to val (at least one each when the group
    has three or more actors); the rest train.
    """
    clips = sorted(clips)
    actors_present = sorted({c.split("_")[0] for c in clips})
    missing = [a for a in actors_present if a not in actor_sex]
    if missing:
        raise DataError(f"cremad: actor {missing[0]} of the clips is not listed in VideoDemographics.csv")
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = {}
    for a in actors_present:
        groups.setdefault(actor_sex[a], []).append(a)
    assign: dict[str, str] = {}
    for sex in sorted(groups):
        ids = groups[sex]
        ids = [ids[i] for i in rng.permutation(len(ids))]
        n = len(ids)
        n_test = int(round(test_fraction * n))
        n_val = int(round(val_fraction * n))
        if n >= 3:
            n_test, n_val = max(1, n_test), max(1, n_val)
        for i, a in enumerate(ids):
            assign[a] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for c in clips:
        out[assign[c.split("_")[0]]].append(c)
    actors = {s: sorted(a for a, v in assign.items() if v == s) for s in out}
    return out, actors


def _manifest_rows(params: dict) -> list[dict]:
    path = params.get("manifest")
    rows = load_manifest(Path(path).expanduser() if path else packaged_manifest("cremad"))
    base = params.get("base_url")
    if base:
        base = base.rstrip("/") + "/"
        for r in rows:
            r["url"] = base + r["path"]
    return rows


def _split_table() -> dict[str, str]:
    with open(packaged_manifest("cremad_split"), newline="") as f:
        lines = [ln for ln in f if not ln.startswith("#")]
    return {r["clip"]: r["split"] for r in csv.DictReader(lines, delimiter="\t")}


def _read_demographics(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise DataError(f"{path}: missing; split: speaker_independent needs VideoDemographics.csv from "
                        f"github.com/CheyneyComputerScience/CREMA-D in the raw dir (run `g2d acquire`)")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    if not rows or "ActorID" not in rows[0] or "Sex" not in rows[0]:
        raise DataError(f"{path}: expected columns ActorID and Sex")
    return {str(r["ActorID"]).strip(): str(r["Sex"]).strip() for r in rows}


# ============================================================================================
# acquire / prepare

_PLACE_HINT = ("AudioWAV/*.wav, VideoFlash/*.flv and VideoDemographics.csv of "
               "github.com/CheyneyComputerScience/CREMA-D (Git LFS media)")


def acquire(params: dict, raw_dir: str | Path, source: str, source_dir: str | Path | None) -> None:
    """Get CREMA-D into ``raw_dir`` and verify every file against the checksum manifest.

    ``download``: fetch missing/corrupt files (resumable, verified, ``download_workers`` in
    parallel); ``local``: hard-link or copy from ``source_dir`` (same layout); ``manual``: only
    verify what the user placed in ``raw_dir``.
    """
    raw = Path(raw_dir)
    rows = _manifest_rows(params)
    if source == "generate":
        raise ConfigError("key 'dataset.source': cremad cannot be generated (use download, local or manual)")
    if source == "download":
        todo = [r for r, _ in _bad_rows(rows, raw)]
        if todo:
            raw.mkdir(parents=True, exist_ok=True)
            _download_all(todo, raw, params)
    elif source == "local":
        if not source_dir:
            raise ConfigError("key 'dataset.source_dir': source: local needs the folder holding a CREMA-D copy")
        src = Path(source_dir).expanduser()
        absent = [r["path"] for r in rows if not (src / r["path"]).is_file()]
        if absent:
            raise DataError(f"{src}: {len(absent)} CREMA-D files missing (e.g. {absent[0]}); it must hold {_PLACE_HINT}")
        for r, _ in _bad_rows(rows, raw):
            link_or_copy(src / r["path"], raw / r["path"])
    elif source != "manual":
        raise ConfigError(f"key 'dataset.source': unknown source {source!r}")
    bad = verify_files(rows, raw)
    if bad:
        p, why = bad[0]
        raise DataError(f"{raw}: {len(bad)} of {len(rows)} CREMA-D files missing or corrupt (e.g. {p}: {why}); "
                        f"put {_PLACE_HINT} under {raw}, or use dataset.source: download")


def _bad_rows(rows: list[dict], raw: Path) -> list[tuple[dict, str]]:
    by_path = {r["path"]: r for r in rows}
    return [(by_path[p], why) for p, why in verify_files(rows, raw)]


def _download_all(rows: list[dict], raw: Path, params: dict) -> None:
    from tqdm import tqdm

    for r in rows:
        if not r.get("url"):
            raise DataError(f"{params.get('manifest') or 'cremad.tsv'}: no url for {r['path']}")
    workers = max(1, int(params.get("download_workers", 1)))

    def one(r: dict) -> None:
        fetch(r["url"], raw / r["path"], sha256=r["sha256"] or None, size=r["size"],
              retries=int(params.get("retries", 3)), progress=False)

    with tqdm(total=len(rows), desc="cremad download", unit="file", leave=False,
              disable=not params.get("progress", True)) as bar:
        if workers == 1:
            for r in rows:
                one(r)
                bar.update(1)
        else:
            with ThreadPoolExecutor(workers) as pool:
                for _ in pool.map(one, rows):
                    bar.update(1)


def _clip_features(args: tuple[Path, str, dict]) -> tuple[np.ndarray, np.ndarray | None]:
    raw, clip, p = args
    wav = raw / "AudioWAV" / f"{clip}.wav"
    x, sr = read_wav(wav)
    a = audio_features(x, sr, sample_rate=p["sample_rate"], seconds=p["seconds"], n_fft=p["n_fft"],
                       hop=p["hop_length"], pad_mode=p["pad_mode"], tile_repeats=p["tile_repeats"])
    v = None
    if p["num_frames"] > 0:
        frames = decode_video_frames(raw / "VideoFlash" / f"{clip}.flv", p["num_frames"])
        v = frames_to_array(frames, p["frame_size"], p["resize"])
    return a, v


def prepare(params: dict, raw_dir: str | Path, out_dir: str | Path) -> dict:
    """Turn the raw clips into the prepared format (see the module docstring for the recipe)."""
    raw, out = Path(raw_dir), Path(out_dir)
    p = dict(params)
    rows = _manifest_rows(p)
    clips = sorted(Path(r["path"]).stem for r in rows if r["path"].startswith("AudioWAV/"))
    if not clips:
        raise DataError(f"{p.get('manifest') or 'cremad.tsv'}: lists no AudioWAV/*.wav clips")
    need = [f"AudioWAV/{c}.wav" for c in clips] + ([f"VideoFlash/{c}.flv" for c in clips] if p["num_frames"] > 0 else [])
    absent = [f for f in need if not (raw / f).is_file()]
    if absent:
        raise DataError(f"{raw}: {len(absent)} CREMA-D media files missing (e.g. {absent[0]}); "
                        f"run `g2d acquire` or put {_PLACE_HINT} under {raw}")
    for c in clips:
        if len(c.split("_")) != 4 or c.split("_")[2] not in CLASSES:
            raise DataError(f"{raw / 'AudioWAV' / (c + '.wav')}: name is not <actor>_<sentence>_<emotion>_<level> with emotion in {CLASSES}")
    extra: dict[str, Any] = {}
    if p["split"] == "authors":
        split = authors_split(clips, _split_table(), p["val_fraction"], p["split_seed"])
    elif p["split"] == "speaker_independent":
        split, actors = speaker_independent_split(clips, _read_demographics(raw / "VideoDemographics.csv"),
                                                  p["val_fraction"], p["test_fraction"], p["split_seed"])
        extra["split_actors"] = actors
    else:
        raise ConfigError(f"key 'dataset.params.split': must be 'authors' or 'speaker_independent', got {p['split']!r}")
    for s, cl in split.items():
        if not cl:
            raise DataError(f"{raw}: split {s!r} would be empty ({len(clips)} clips)")
    if p["resize"] not in ("squash", "center"):
        raise ConfigError(f"key 'dataset.params.resize': must be 'squash' or 'center', got {p['resize']!r}")

    scratch = out / SCRATCH
    scratch.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, dict[str, np.ndarray]] = {}
    labels: dict[str, np.ndarray] = {}
    ids: dict[str, np.ndarray] = {}
    n_bins, n_frames = 1 + p["n_fft"] // 2, 1 + int(round(p["seconds"] * p["sample_rate"])) // p["hop_length"]
    try:
        from tqdm import tqdm

        for s, cl in split.items():
            a_arr = open_memmap_reserved(scratch / f"{s}_audio.npy", dtype=p["dtype"],
                                         shape=(len(cl), 1, n_bins, n_frames))
            mods = {"audio": a_arr}
            if p["num_frames"] > 0:
                mods["visual"] = open_memmap_reserved(
                    scratch / f"{s}_visual.npy", dtype=p["dtype"],
                    shape=(len(cl), p["num_frames"], 3, p["frame_size"], p["frame_size"]))
            jobs = [(raw, c, p) for c in cl]
            results = map_ordered(_clip_features, jobs, int(p["workers"]))
            for i, (a, v) in enumerate(tqdm(results, total=len(jobs), desc=f"cremad {s}", leave=False,
                                            disable=not p.get("progress", True))):
                a_arr[i] = a
                if v is not None:
                    mods["visual"][i] = v
            arrays[s] = mods
            labels[s] = np.array([CLASSES.index(c.split("_")[2]) for c in cl], dtype=np.int64)
            ids[s] = np.array(cl)
        extra["recipe"] = ("audio: resample to sample_rate, tile to seconds, clip [-1,1], log(|STFT|+1e-7) "
                           "(periodic hann, center, pad_mode); visual: 1-fps mid-second frames, resize, ImageNet norm")
        meta = write_prepared(out, dataset="cremad", task="classification", classes=list(CLASSES), splits=arrays,
                              labels=labels, ids=ids, params=p, extra=extra, dtype=p["dtype"])
    finally:
        arrays.clear()
        shutil.rmtree(scratch, ignore_errors=True)
    return meta


def map_ordered(fn: Callable, jobs: list, workers: int) -> Iterator:
    """``map`` in order, lazily; a process pool when ``workers > 1``."""
    if workers <= 1 or len(jobs) < 2:
        yield from map(fn, jobs)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        yield from pool.map(fn, jobs, chunksize=4)


def train_transforms(params: dict) -> dict:
    return {"visual": FrameAugment(params["crop_size"])} if params.get("num_frames", 1) > 0 else {}


DEFAULT_PARAMS: dict[str, Any] = {
    "split": "authors",            # authors | speaker_independent
    "val_fraction": 0.1,           # of train clips (authors) or of actors (speaker_independent)
    "test_fraction": 0.1,          # of actors (speaker_independent only)
    "split_seed": 999,             # the authors' seed
    "sample_rate": 22050,
    "seconds": 3.0,
    "tile_repeats": 3,
    "n_fft": 512,
    "hop_length": 353,
    "pad_mode": "reflect",         # librosa < 0.10 default; librosa >= 0.10 pads with zeros ("constant")
    "num_frames": 1,               # frames per clip (0 = audio only)
    "frame_size": 224,             # stored frame size
    "crop_size": 224,              # RandomResizedCrop output (augment)
    "resize": "squash",            # squash = Resize((s, s)) as the authors; center = short side + centre crop
    "dtype": "float16",
    "workers": 1,                  # processes for prepare
    "download_workers": 4,         # parallel downloads
    "retries": 3,
    "progress": True,
    "manifest": None,              # alternative checksum manifest (TSV path, url, sha256, size)
    "base_url": None,              # alternative URL prefix for the manifest paths (a mirror)
}

register(DatasetSpec(
    name="cremad",
    task="classification",
    modalities=("audio", "visual"),
    classes=CLASSES,
    default_encoders={"audio": {"name": "resnet18", "mode": "audio"},
                      "visual": {"name": "resnet18", "mode": "visual"}},
    acquire=acquire,
    prepare=prepare,
    default_params=DEFAULT_PARAMS,
    train_transforms=train_transforms,
    description="CREMA-D emotion recognition: 7 442 clips, 91 actors, 6 classes; audio log-STFT 1×257×188 + 1 video frame 3×224×224",
    source="https://github.com/CheyneyComputerScience/CREMA-D (Git LFS media via media.githubusercontent.com)",
    license="ODbL 1.0 (database) / DbCL 1.0 (contents)",
    disk="3.1 GB raw (0.6 GB wav + 2.4 GB flv); ~3 GB prepared (float16)",
    manual=False,
))
