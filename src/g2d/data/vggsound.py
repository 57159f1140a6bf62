"""VGGSound: 10 s YouTube clips, 309 sound classes, audio + video.

YouTube clips cannot be redistributed, so the user downloads them and places::

    <raw_dir>/vggsound.csv                 the official list, no header:
                                           youtube_id,start_seconds,label,split (train|test)
    <raw_dir>/video/<youtube_id>_<start>.mp4
                                           the 10 s clip starting at start_seconds; <start> as
                                           written in the csv (e.g. ``-0TDb2lW2NQ_30.mp4``) or
                                           zero-padded to 6 digits (``-0TDb2lW2NQ_000030.mp4``)

Many YouTube videos have disappeared; ``missing: skip`` prepares the clips that exist (the
authors' loader silently skips absent files) and records how many were skipped in the meta;
``missing: error`` (default) refuses.

Preprocessing (the authors' ``VGGSound`` dataset, made deterministic):

* audio: decoded from the mp4 with PyAV, mono 16 kHz; tiled until ≥ 10 s; a ``audio_seconds``
  (5 s) window starting at ``audio_offset`` (2.5 s — the middle of the authors' random start range
  [0, 5 s]); clipped to [-1, 1]; ``log(|STFT| + 1e-7)`` with ``n_fft=256, hop=128`` (periodic
  Hann, centred, reflect) → ``(1, 129, 626)``;
* visual: the first ``num_frames`` (3) frames at 1 fps (middle of each second), shorter side
  resized to 224 and centre-cropped (``resize: center``; ``squash`` = the authors' test
  ``Resize((224, 224))``), ImageNet mean/std → ``(3, 3, 224, 224)``. Training augmentation:
  ``RandomResizedCrop(224)`` + flip per frame.

Splits: the csv's train/test; ``val_fraction`` of train (seeded) is validation. Classes are the
sorted label names found in the csv (stored in the prepared meta; the registry lists none).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from .cremad import (SCRATCH, FrameAugment, audio_features, decode_video_frames, frames_to_array, map_ordered,
                     read_av_audio)
from .download import gather_files, link_or_copy
from .prepared import open_memmap_reserved, write_prepared
from .registry import DatasetSpec, register

__all__ = ["read_vggsound_csv", "video_path"]

_HINT = ("download the clips listed in vggsound.csv (www.robots.ox.ac.uk/~vgg/data/vggsound) and put them as "
         "video/<youtube_id>_<start>.mp4 next to vggsound.csv")


def read_vggsound_csv(path: Path) -> list[tuple[str, str, str, str]]:
    """Rows ``(youtube_id, start, label, split)`` of the official csv (a header line is skipped)."""
    if not path.is_file():
        raise DataError(f"{path}: missing; put the official VGGSound csv (youtube_id,start_seconds,label,split) there")
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for i, r in enumerate(csv.reader(f), start=1):
            if not r or (i == 1 and r[0].strip().lower() in ("youtube_id", "ytid", "# ytid")):
                continue
            if len(r) < 4:
                raise DataError(f"{path}: line {i}: expected youtube_id,start_seconds,label,split")
            yt, start, label, split = (x.strip() for x in r[:4])
            if split not in ("train", "test"):
                raise DataError(f"{path}: line {i}: split must be train or test, got {split!r}")
            rows.append((yt, start, label, split))
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def _candidates(yt: str, start: str) -> list[str]:
    names = [f"{yt}_{start}.mp4"]
    try:
        names.append(f"{yt}_{int(float(start)):06d}.mp4")
    except ValueError:
        pass
    return list(dict.fromkeys(names))


def video_path(root: Path, video_dir: str, yt: str, start: str) -> Path | None:
    """The clip's file under ``root/video_dir`` if it exists (either naming)."""
    for n in _candidates(yt, start):
        p = root / video_dir / n
        if p.is_file():
            return p
    return None


def acquire(params: dict, raw_dir: str | Path, source: str, source_dir: str | Path | None) -> None:
    raw = Path(raw_dir)
    gather_files("vggsound", [params["csv"]], raw, source, source_dir, _HINT)
    rows = read_vggsound_csv(raw / params["csv"])
    if source == "local":
        src = Path(source_dir).expanduser()  # gather_files checked it is set
        for yt, start, _, _ in rows:
            if video_path(raw, params["video_dir"], yt, start) is None:
                p = video_path(src, params["video_dir"], yt, start)
                if p is not None:
                    link_or_copy(p, raw / params["video_dir"] / p.name)
    _check_videos(raw, rows, params)


def _check_videos(raw: Path, rows: list, params: dict) -> list[tuple[tuple, Path]]:
    found, absent = [], []
    for r in rows:
        p = video_path(raw, params["video_dir"], r[0], r[1])
        if p is not None:
            found.append((r, p))
        else:
            absent.append(_candidates(r[0], r[1])[0])
    if params["missing"] not in ("error", "skip"):
        raise ConfigError(f"key 'dataset.params.missing': must be 'error' or 'skip', got {params['missing']!r}")
    if absent and (params["missing"] == "error" or not found):
        shown = ", ".join(absent[:5]) + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
        raise DataError(f"vggsound: {len(absent)} of {len(rows)} clips missing in {raw / params['video_dir']}: {shown}; "
                        f"{_HINT} (or set dataset.params.missing: skip)")
    return found


def _clip(args: tuple[Path, dict]) -> tuple[np.ndarray, np.ndarray]:
    path, p = args
    x = read_av_audio(path, p["sample_rate"])
    a = audio_features(x, p["sample_rate"], sample_rate=p["sample_rate"], seconds=p["audio_seconds"], n_fft=p["n_fft"],
                       hop=p["hop_length"], pad_mode=p["pad_mode"], tile_repeats=None,
                       offset=int(round(p["audio_offset"] * p["sample_rate"])))
    v = frames_to_array(decode_video_frames(path, p["num_frames"]), p["frame_size"], p["resize"])
    return a, v


def prepare(params: dict, raw_dir: str | Path, out_dir: str | Path) -> dict:
    from tqdm import tqdm

    raw, out = Path(raw_dir), Path(out_dir)
    p = dict(params)
    if p["resize"] not in ("squash", "center"):
        raise ConfigError(f"key 'dataset.params.resize': must be 'squash' or 'center', got {p['resize']!r}")
    if p["num_frames"] < 1:
        raise ConfigError("key 'dataset.params.num_frames': must be >= 1")
    rows = read_vggsound_csv(raw / p["csv"])
    found = _check_videos(raw, rows, p)
    classes = sorted({r[2] for r, _ in found})
    keyed = {}
    for r, path in found:
        key = f"{r[0]}_{r[1]}"
        if key in keyed:
            raise DataError(f"{raw / p['csv']}: clip {key} listed twice")
        keyed[key] = (r, path)
    train = sorted(k for k, (r, _) in keyed.items() if r[3] == "train")
    test = sorted(k for k, (r, _) in keyed.items() if r[3] == "test")
    perm = [train[i] for i in np.random.default_rng(p["split_seed"]).permutation(len(train))]
    n_val = int(round(p["val_fraction"] * len(train)))
    split = {"train": sorted(perm[n_val:]), "val": sorted(perm[:n_val]), "test": test}
    for s, keys in split.items():
        if not keys:
            raise DataError(f"{raw / p['csv']}: split {s!r} would be empty ({len(keyed)} clips available)")
    n_bins = 1 + p["n_fft"] // 2
    n_frames = 1 + int(round(p["audio_seconds"] * p["sample_rate"])) // p["hop_length"]
    scratch = out / SCRATCH
    scratch.mkdir(parents=True, exist_ok=True)
    arrays, labels, ids = {}, {}, {}
    try:
        for s, keys in split.items():
            a_arr = open_memmap_reserved(scratch / f"{s}_audio.npy", dtype=p["dtype"],
                                         shape=(len(keys), 1, n_bins, n_frames))
            v_arr = open_memmap_reserved(scratch / f"{s}_visual.npy", dtype=p["dtype"],
                                         shape=(len(keys), p["num_frames"], 3, p["frame_size"], p["frame_size"]))
            jobs = [(keyed[k][1], p) for k in keys]
            for i, (a, v) in enumerate(tqdm(map_ordered(_clip, jobs, int(p["workers"])), total=len(jobs),
                                            desc=f"vggsound {s}", leave=False, disable=not p.get("progress", True))):
                a_arr[i], v_arr[i] = a, v
            arrays[s] = {"audio": a_arr, "visual": v_arr}
            labels[s] = np.array([classes.index(keyed[k][0][2]) for k in keys], dtype=np.int64)
            ids[s] = np.array(keys)
        meta = write_prepared(out, dataset="vggsound", task="classification", classes=classes, splits=arrays,
                              labels=labels, ids=ids, params=p, dtype=p["dtype"],
                              extra={"skipped_missing_clips": len(rows) - len(found)})
    finally:
        arrays.clear()
        shutil.rmtree(scratch, ignore_errors=True)
    return meta


def train_transforms(params: dict) -> dict:
    return {"visual": FrameAugment(params["crop_size"])}


DEFAULT_PARAMS: dict[str, Any] = {
    "csv": "vggsound.csv",
    "video_dir": "video",
    "missing": "error",          # error | skip
    "val_fraction": 0.1,
    "split_seed": 999,
    "sample_rate": 16000,
    "audio_seconds": 5.0,
    "audio_offset": 2.5,         # seconds into the (tiled) clip where the audio window starts
    "n_fft": 256,
    "hop_length": 128,
    "pad_mode": "reflect",
    "num_frames": 3,
    "frame_size": 224,
    "crop_size": 224,
    "resize": "center",          # center = short side + centre crop; squash = Resize((s, s))
    "dtype": "float16",
    "workers": 1,
    "progress": True,
}

register(DatasetSpec(
    name="vggsound",
    task="classification",
    modalities=("audio", "visual"),
    classes=None,  # 309 labels read from the csv at prepare time (meta["classes"])
    default_encoders={"audio": {"name": "resnet18", "mode": "audio"},
                      "visual": {"name": "resnet18", "mode": "visual"}},
    acquire=acquire,
    prepare=prepare,
    default_params=DEFAULT_PARAMS,
    train_transforms=train_transforms,
    description="VGGSound: ~200k 10 s YouTube clips, 309 classes; audio log-STFT 1×129×626 + 3 frames 3×224×224",
    source="https://www.robots.ox.ac.uk/~vgg/data/vggsound/ (csv) + YouTube clips downloaded by the user",
    license="csv: CC BY 4.0; videos: YouTube terms (not redistributable)",
    disk="~300 GB of mp4; ~210 GB prepared (float16) + the same again as scratch while preparing",
    manual=True,
))
