"""``avmnist_fsdd``: AV-MNIST rebuilt from public MNIST + Free Spoken Digit Dataset recordings.

AV-MNIST (Vielzeuf et al., 2018; the MultiBench copy is what G2D uses) pairs MNIST digits whose
images were degraded by a PCA projection keeping 25 % of the energy with spoken digits from
FSDD turned into 112 × 112 spectrograms (the original additionally mixed in ESC-50 noise, which
is not public in a verifiable form; ``audio_snr_db`` adds white noise instead). This module
rebuilds such a set from the two public sources:

1. **acquire** — ``source=download``: the four MNIST ``*.gz`` IDX files from the ossci-datasets
   S3 mirror (the one torchvision uses) and the 3 000 FSDD wavs from the public GitHub repository
   ``Jakobovski/free-spoken-digit-dataset`` at commit 26eb9aa, each fetched with
   :func:`g2d.data.download.fetch` and verified against ``g2d/data/checksums/avmnist_fsdd.tsv``
   (URL, SHA-256, size; MNIST rows also carry the SHA-256 of the decompressed IDX payload so a
   re-compressed copy is accepted). ``source=local``: copy from
   ``dataset.source_dir`` holding ``mnist/*.gz`` and ``fsdd/recordings/*.wav`` (or point
   ``params.mnist_dir`` / ``params.fsdd_dir`` at each), verified the same way. Raw layout:
   ``<raw_dir>/mnist/<canonical name>.gz`` and ``<raw_dir>/fsdd/recordings/*.wav``.
2. **prepare** — images: PCA fitted on the training images (never val/test), projection onto the
   smallest number of components whose explained variance reaches ``image_pca_energy``,
   reconstruction, clipped to 0..255. Audio: each FSDD wav (8 kHz) is centred in a 1 s window
   (cropped around its centre when longer), STFT with ``n_fft`` 222 / hop 72 → 112 × 112 power
   spectrogram, per-clip dB relative to its maximum clipped at −80 dB, mapped to 0..255.
   Pairing: every image is paired with a recording of the same digit by a seeded balanced
   sampler (each digit's pool is shuffled and cycled). **Test images get audio only from takes
   0–4** (FSDD's own test takes), train/val images only from takes 5–49; with
   ``heldout_speaker`` that speaker's recordings become the only test audio and never appear in
   train/val. MNIST train images 55 000–59 999 are the validation split (as MultiBench);
   ``subset_train`` / ``subset_test`` draw seeded stratified subsets (keeping the same
   train/val proportion, val still from 55 000–59 999) for CPU runs.

The MultiBench AV-MNIST layout is written next to the prepared arrays, in
``<prepared_dir>/multibench/``: ``image/{train,test}_data.npy`` (N, 784) uint8,
``audio/{train,test}_data.npy`` (N, 112, 112) uint8, ``{train,test}_labels.npy`` (N,) int64 —
readable by AV-MNIST tools (which divide by 255); its last ``val_rows`` train rows are the
validation split. The prepared format holds ``visual`` (1, 28, 28) and ``audio`` (1, 112, 112)
float16 in [0, 1]. Sample ids are ``m<mnist split><mnist index>_<recording stem>`` so every
pairing is traceable.

This module also holds the FSDD helpers (manifest, acquire, reading) and the PCA degradation
that ``avdigits`` reuses.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import ConfigError, DataError
from .prepared import write_prepared
from .registry import DatasetSpec, register

__all__ = [
    "FSDD_COMMIT", "FSDD_SPEAKERS", "FSDD_TEST_TAKES", "MNIST_FILES", "MNIST_MIRROR",
    "manifest_rows", "acquire_fsdd", "acquire_mnist", "fsdd_recordings", "parse_fsdd_name",
    "read_wav", "read_idx", "pca_degrade", "balanced_pairing", "log_spectrogram_112", "stratified_order",
]

NAME = "avmnist_fsdd"
CLASSES = tuple(str(d) for d in range(10))

#: Full commit of Jakobovski/free-spoken-digit-dataset the manifest's FSDD sums refer to (26eb9aa).
FSDD_COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"
FSDD_URL = f"https://raw.githubusercontent.com/Jakobovski/free-spoken-digit-dataset/{FSDD_COMMIT}/recordings/"
FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
#: FSDD's own convention: takes 0-4 of every speaker/digit are the test set, 5-49 train.
FSDD_TEST_TAKES = range(0, 5)
FSDD_RATE = 8000
MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
#: logical name -> canonical file name (what raw_dir/mnist holds)
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
MNIST_VAL_START = 55_000  # MultiBench: train rows 55 000-59 999 are validation
SPEC_SIZE = 112
_FSDD_RE = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


# ------------------------------------------------------------------------------------------
# manifest

def manifest_rows(params: dict, prefix: str | None = None) -> list[dict]:
    """Rows of the checksum manifest (``params['manifest']`` or the packaged one).

    ``prefix`` keeps only rows whose path starts with it (``"mnist/"``, ``"fsdd/"``).
    """
    from .download import load_manifest, packaged_manifest

    path = params.get("manifest") or packaged_manifest(NAME)
    rows = load_manifest(path)
    if prefix is not None:
        rows = [r for r in rows if str(r["path"]).startswith(prefix)]
    return rows


def _sha256_bytes_of_gzip(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable gzip file ({exc})") from None
    return h.hexdigest()


def _mnist_ok(path: Path, row: dict) -> str | None:
    """None when ``path`` is the manifest's MNIST file (same bytes, or same IDX payload)."""
    from .download import sha256_file

    if not path.is_file():
        return "missing"
    if row.get("size") is not None and path.stat().st_size == row["size"] and row.get("sha256"):
        if sha256_file(path) == row["sha256"]:
            return None
    content = (row.get("content_sha256") or "").strip()
    if content:
        try:
            got = _sha256_bytes_of_gzip(path)
        except DataError:
            return "not a readable gzip file"
        return None if got == content else f"decompressed sha256 {got[:12]}… != expected {content[:12]}…"
    if not row.get("sha256"):
        return None
    return "sha256/size do not match the manifest"


# ------------------------------------------------------------------------------------------
# acquire helpers (shared with avdigits)

def _copy_atomic(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` via a temp file + rename.

    Always a real copy, never a hard link: a link would let any later write to the raw file
    (a user's edit, a test corrupting it on purpose) silently modify the user's source copy.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def _fetch_rows(rows: Sequence[dict], raw_dir: Path, workers: int) -> None:
    """Download manifest rows into raw_dir with the verified downloader (parallel, small files)."""
    from .download import fetch

    missing = [r for r in rows if not r.get("url")]
    if missing:
        raise DataError(f"{missing[0]['path']}: the manifest has no URL for it; place it under {raw_dir} or use source=local")
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        tqdm = None
    bar = tqdm(total=len(rows), desc="download", unit="file", leave=False, disable=len(rows) < 20) if tqdm else None

    def one(r: dict) -> None:
        big = (r.get("size") or 0) > (1 << 20)
        fetch(r["url"], raw_dir / r["path"], sha256=r.get("sha256") or None, size=r.get("size"), progress=big)
        if bar is not None:
            bar.update(1)

    try:
        if workers <= 1 or len(rows) <= 1:
            for r in rows:
                one(r)
        else:
            with ThreadPoolExecutor(max_workers=workers) as ex:
                for fut in [ex.submit(one, r) for r in rows]:
                    fut.result()  # re-raises the first DataError (naming the URL and file)
    finally:
        if bar is not None:
            bar.close()


def _find_dir(base: Path | None, explicit: str | None, candidates: Iterable[str], what: str, key: str) -> Path:
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_dir():
            raise DataError(f"{p}: {what} directory not found (dataset.params.{key})")
        return p
    if base is None:
        raise ConfigError(f"key 'dataset.source_dir': source=local needs the directory holding {what} (or set dataset.params.{key})")
    for c in candidates:
        p = base / c if c else base
        if p.is_dir():
            return p
    raise DataError(f"{base}: no {what} found (looked in {', '.join(str(base / c) if c else str(base) for c in candidates)}); "
                    f"set dataset.params.{key} to its directory")


def acquire_fsdd(params: dict, raw_dir: Path, source: str, source_dir: str | Path | None) -> list[Path]:
    """Put the FSDD recordings listed in the manifest under ``raw_dir/fsdd/recordings``.

    ``download`` fetches each file from the public repository; ``local`` copies from
    ``params['fsdd_dir']`` or ``source_dir`` (which may be the recordings folder itself, or hold
    ``recordings/`` or ``fsdd/recordings/``); ``manual`` only verifies. Every file is checked
    against the manifest's SHA-256 (already verified files are remembered by size/mtime).
    """
    from .download import verify_files

    raw_dir = Path(raw_dir)
    rows = manifest_rows(params, "fsdd/")
    if not rows:
        raise DataError(f"{params.get('manifest') or 'packaged manifest ' + NAME + '.tsv'}: no fsdd/ rows")
    bad = dict(verify_files(rows, raw_dir))
    if not bad:
        return [raw_dir / r["path"] for r in rows]
    todo = [r for r in rows if r["path"] in bad]
    if source == "download":
        for r in todo:
            (raw_dir / r["path"]).unlink(missing_ok=True)
        _fetch_rows(todo, raw_dir, int(params.get("download_workers", 8)))
    elif source == "local":
        src = _find_dir(Path(source_dir).expanduser() if source_dir else None, params.get("fsdd_dir"),
                        ("fsdd/recordings", "recordings", ""), "FSDD recordings (*.wav)", "fsdd_dir")
        if not any(src.glob("*.wav")):
            raise DataError(f"{src}: no FSDD *.wav recordings there")
        for r in todo:
            name = Path(r["path"]).name
            f = src / name
            if not f.is_file():
                raise DataError(f"{f}: FSDD recording missing (expected all 3 000 files of commit {FSDD_COMMIT[:7]})")
            _copy_atomic(f, raw_dir / r["path"])
    elif source == "manual":
        first, why = next(iter(bad.items()))
        raise DataError(f"{raw_dir / first}: {why}; place the FSDD recordings (commit {FSDD_COMMIT[:7]}) in {raw_dir / 'fsdd/recordings'}")
    else:
        raise ConfigError(f"key 'dataset.source': FSDD audio cannot be '{source}' (use download, local or manual)")
    still = verify_files(rows, raw_dir)
    if still:
        path, why = still[0]
        raise DataError(f"{raw_dir / path}: {why} (does not match the FSDD manifest; {len(still)} file(s) bad)")
    return [raw_dir / r["path"] for r in rows]


def acquire_mnist(params: dict, raw_dir: Path, source: str, source_dir: str | Path | None) -> None:
    """Put the four MNIST IDX ``.gz`` files under ``raw_dir/mnist`` (canonical names), verified."""
    raw_dir = Path(raw_dir)
    rows = {Path(r["path"]).name: r for r in manifest_rows(params, "mnist/")}
    for logical, name in MNIST_FILES.items():
        if name not in rows:
            raise DataError(f"{params.get('manifest') or NAME + '.tsv'}: manifest lacks mnist/{name}")
    todo = [rows[n] for n in MNIST_FILES.values() if _mnist_ok(raw_dir / rows[n]["path"], rows[n]) is not None]
    if not todo:
        return
    if source == "download":
        for r in todo:
            (raw_dir / r["path"]).unlink(missing_ok=True)
        _fetch_rows(todo, raw_dir, 4)
    elif source == "local":
        src = _find_dir(Path(source_dir).expanduser() if source_dir else None, params.get("mnist_dir"),
                        ("mnist", "MNIST/raw", ""), "MNIST *.gz IDX files", "mnist_dir")
        for r in todo:
            name = Path(r["path"]).name                      # train-images-idx3-ubyte.gz
            alt = re.sub(r"-(idx\d-ubyte)\.gz$", r".\1.gz", name)  # train-images.idx3-ubyte.gz
            for cand in (name, alt):
                if (src / cand).is_file():
                    _copy_atomic(src / cand, raw_dir / r["path"])
                    break
            else:
                raise DataError(f"{src / name}: MNIST file missing (also looked for {alt})")
    elif source == "manual":
        r = todo[0]
        raise DataError(f"{raw_dir / r['path']}: MNIST file missing or corrupt; place the public MNIST .gz files in {raw_dir / 'mnist'}")
    else:
        raise ConfigError(f"key 'dataset.source': {NAME} cannot use source '{source}' (use download, local or manual)")
    for r in todo:
        why = _mnist_ok(raw_dir / r["path"], r)
        if why is not None:
            raise DataError(f"{raw_dir / r['path']}: {why} (not the public MNIST file)")


# ------------------------------------------------------------------------------------------
# reading

def parse_fsdd_name(name: str) -> tuple[int, str, int]:
    """``'3_theo_17.wav'`` → (3, 'theo', 17); DataError for other names."""
    m = _FSDD_RE.match(Path(name).name)
    if not m:
        raise DataError(f"{name}: not an FSDD recording name ({{digit}}_{{speaker}}_{{index}}.wav)")
    return int(m.group(1)), m.group(2), int(m.group(3))


def fsdd_recordings(raw_dir: Path, params: dict) -> list[Path]:
    """The manifest's FSDD wavs under ``raw_dir`` (sorted by name); DataError if one is missing."""
    files = [Path(raw_dir) / r["path"] for r in manifest_rows(params, "fsdd/")]
    for f in files:
        if not f.is_file():
            raise DataError(f"{f}: FSDD recording missing; run `g2d acquire` first")
    return sorted(files, key=lambda q: q.name)


def read_wav(path: Path, rate: int | None = None) -> np.ndarray:
    """Mono float32 samples in [-1, 1]; checks the sample rate when ``rate`` is given."""
    import soundfile as sf

    from .cremad import check_wav_complete

    check_wav_complete(path)  # libsndfile silently returns the samples a truncated copy still has
    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as exc:  # soundfile.LibsndfileError is a RuntimeError
        raise DataError(f"{path}: cannot read wav ({exc})") from None
    if rate is not None and sr != rate:
        raise DataError(f"{path}: sample rate {sr} Hz, expected {rate} Hz")
    if x.shape[0] == 0:
        raise DataError(f"{path}: zero-length audio")
    return x.mean(axis=1)


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file of unsigned bytes (MNIST images (N, 28, 28) or labels (N,))."""
    try:
        opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from None
    if len(data) < 8:
        raise DataError(f"{path}: truncated IDX file")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08 or ndim not in (1, 3):
        raise DataError(f"{path}: not an unsigned-byte IDX file (magic {data[:4].hex()})")
    dims = struct.unpack(f">{ndim}I", data[4: 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: {body.size} bytes of data for shape {dims}")
    return body.reshape(dims)


# ------------------------------------------------------------------------------------------
# transforms

def pca_degrade(train: np.ndarray, others: Sequence[np.ndarray], energy: float) -> tuple[np.ndarray, list[np.ndarray], int]:
    """Project flattened images onto the top principal components of ``train``.

    Keeps the smallest number k of components whose explained-variance ratio sums to at least
    ``energy`` (AV-MNIST: 0.25), reconstructs (mean + projection) and returns
    ``(train_rec, [other_rec...], k)``. ``energy >= 1`` returns the inputs unchanged.
    """
    if not 0 < energy <= 1:
        raise ConfigError(f"key 'dataset.params.image_pca_energy': must be in (0, 1], got {energy}")
    X = train.reshape(len(train), -1).astype(np.float64)
    if energy >= 1:
        return train.astype(np.float32), [o.astype(np.float32) for o in others], X.shape[1]
    mean = X.mean(axis=0)
    Xc = X - mean
    cov = Xc.T @ Xc / max(1, len(X) - 1)
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1]
    evals, evecs = np.clip(evals[order], 0, None), evecs[:, order]
    ratio = np.cumsum(evals) / evals.sum()
    k = int(np.searchsorted(ratio, energy - 1e-12) + 1)
    W = evecs[:, :k]

    def rec(A: np.ndarray) -> np.ndarray:
        F = A.reshape(len(A), -1).astype(np.float64) - mean
        return ((F @ W) @ W.T + mean).reshape(A.shape).astype(np.float32)

    return rec(train), [rec(o) for o in others], k


def balanced_pairing(labels: np.ndarray, pools: dict[int, np.ndarray], rng: np.random.Generator, what: str) -> np.ndarray:
    """For each label pick an element of ``pools[label]``: each pool is shuffled and cycled, so
    recordings are used as evenly as possible; returns the chosen pool elements."""
    out = np.empty(len(labels), dtype=np.asarray(next(iter(pools.values()))).dtype if pools else np.int64)
    for c in np.unique(labels):
        pool = np.asarray(pools.get(int(c), []))
        if len(pool) == 0:
            raise DataError(f"{what}: no recording of digit {int(c)} available for pairing")
        idx = np.flatnonzero(labels == c)
        reps = -(-len(idx) // len(pool))
        seq = np.concatenate([pool[rng.permutation(len(pool))] for _ in range(reps)])[: len(idx)]
        out[idx[rng.permutation(len(idx))]] = seq
    return out


def _center_window(x: np.ndarray, n: int) -> np.ndarray:
    if len(x) >= n:
        s = (len(x) - n) // 2
        return x[s: s + n]
    out = np.zeros(n, dtype=np.float32)
    s = (n - len(x)) // 2
    out[s: s + len(x)] = x
    return out


def log_spectrogram_112(waves: np.ndarray) -> np.ndarray:
    """(B, 8000) float waves at 8 kHz → (B, 112, 112) uint8 log-power spectrograms.

    STFT n_fft 222 (112 frequency bins), hop 72, Hann window, centred (112 frames); per clip dB
    relative to its maximum, clipped at −80 dB, mapped linearly to 0..255.
    """
    import torch
    import torchaudio

    spec = torchaudio.transforms.Spectrogram(n_fft=222, hop_length=72, power=2.0)
    with torch.no_grad():
        S = spec(torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32)))[..., :SPEC_SIZE, :SPEC_SIZE]
        db = 10.0 * torch.log10(S.clamp_min(1e-10))
        db = db - db.amax(dim=(-2, -1), keepdim=True)
        db = db.clamp_min(-80.0)
        out = ((db + 80.0) / 80.0 * 255.0).round()
    return out.numpy().astype(np.uint8)


# ------------------------------------------------------------------------------------------
# dataset

DEFAULT_PARAMS: dict = {
    "seed": 0,
    "image_pca_energy": 0.25,     # fraction of PCA variance kept (AV-MNIST: 25 %)
    "audio_snr_db": None,         # optional white noise added to each wave (None = clean)
    "subset_train": None,         # use this many of the 60 000 MNIST train images (incl. val)
    "subset_test": None,          # use this many of the 10 000 MNIST test images
    "heldout_speaker": None,      # FSDD speaker whose recordings are the only test audio
    "mnist_dir": None,            # source=local: folder with the MNIST .gz files
    "fsdd_dir": None,             # source=local: folder with the FSDD wavs
    "manifest": None,             # checksum manifest TSV (default: the packaged one)
    "download_workers": 8,
    "write_multibench": True,     # also write the MultiBench AV-MNIST layout
}


def acquire(params: dict, raw_dir: str | Path, source: str, source_dir: str | Path | None) -> None:
    raw_dir = Path(raw_dir)
    if source == "generate":
        raise ConfigError(f"key 'dataset.source': {NAME} is built from public MNIST + FSDD files: use download, local or manual")
    acquire_mnist(params, raw_dir, source, source_dir)
    acquire_fsdd(params, raw_dir, source, source_dir)


def stratified_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A seeded permutation of ``range(len(labels))`` every prefix of which is label-stratified.

    Samples are shuffled, ranked within their class, and ordered by (rank + 0.5) / class size,
    so cutting the order at any point gives each class its proportional share (±1).
    """
    labels = np.asarray(labels)
    perm = rng.permutation(len(labels))
    lab = labels[perm]
    key = np.empty(len(labels), dtype=np.float64)
    for c in np.unique(lab):
        pos = np.flatnonzero(lab == c)
        key[pos] = (np.arange(len(pos)) + 0.5) / len(pos)
    return perm[np.argsort(key, kind="stable")]


def _stratified_subset(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a seeded, label-stratified subset of size ``n``."""
    if n >= len(labels):
        return np.arange(len(labels))
    return np.sort(stratified_order(labels, rng)[:n])


def _check_params(p: dict) -> None:
    for key in ("subset_train", "subset_test"):
        v = p[key]
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 20):
            raise ConfigError(f"key 'dataset.params.{key}': must be an integer >= 20 or null, got {v!r}")
    if p["heldout_speaker"] is not None and p["heldout_speaker"] not in FSDD_SPEAKERS:
        raise ConfigError(f"key 'dataset.params.heldout_speaker': unknown FSDD speaker {p['heldout_speaker']!r} (known: {', '.join(FSDD_SPEAKERS)})")
    if p["audio_snr_db"] is not None and not isinstance(p["audio_snr_db"], (int, float)):
        raise ConfigError(f"key 'dataset.params.audio_snr_db': must be a number or null, got {p['audio_snr_db']!r}")


def _add_noise(waves: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise at ``snr_db`` relative to each wave's power over its non-silent part."""
    power = np.array([np.mean(w[np.abs(w) > 1e-4] ** 2) if np.any(np.abs(w) > 1e-4) else 1e-8 for w in waves])
    sigma = np.sqrt(power / 10 ** (snr_db / 10.0)).astype(np.float32)
    return waves + rng.standard_normal(waves.shape).astype(np.float32) * sigma[:, None]


def prepare(params: dict, raw_dir: str | Path, out_dir: str | Path) -> dict:
    p = dict(DEFAULT_PARAMS, **params)
    _check_params(p)
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    rng = np.random.default_rng(int(p["seed"]))
    mn = raw_dir / "mnist"
    for name in MNIST_FILES.values():
        if not (mn / name).is_file():
            raise DataError(f"{mn / name}: MNIST file missing; run `g2d acquire` first")
    tr_x, tr_y = read_idx(mn / MNIST_FILES["train_images"]), read_idx(mn / MNIST_FILES["train_labels"])
    te_x, te_y = read_idx(mn / MNIST_FILES["test_images"]), read_idx(mn / MNIST_FILES["test_labels"])
    if len(tr_x) != len(tr_y) or len(te_x) != len(te_y):
        raise DataError(f"{mn}: image and label counts differ")

    # --- which MNIST rows: train part [0, val_start), val part [val_start, N) --------------
    val_start = MNIST_VAL_START if len(tr_y) == 60_000 else len(tr_y) * 11 // 12  # 11/12 = 55k/60k
    n_tr_all = len(tr_y)
    if p["subset_train"] is not None and p["subset_train"] < n_tr_all:
        n_val = max(10, round(p["subset_train"] * (n_tr_all - val_start) / n_tr_all))
        a = _stratified_subset(tr_y[:val_start], p["subset_train"] - n_val, rng)
        b = val_start + _stratified_subset(tr_y[val_start:], n_val, rng)
        tr_rows = np.concatenate([a, b])
    else:
        tr_rows = np.arange(n_tr_all)
    te_rows = _stratified_subset(te_y, p["subset_test"], rng) if p["subset_test"] else np.arange(len(te_y))
    n_val_rows = int((tr_rows >= val_start).sum())

    # --- images: PCA (fit on the train part only) ---------------------------------------------
    fit_rows = tr_rows[tr_rows < val_start]
    img_tr = tr_x[tr_rows].reshape(len(tr_rows), -1).astype(np.float32)
    img_te = te_x[te_rows].reshape(len(te_rows), -1).astype(np.float32)
    img_fit = tr_x[fit_rows].reshape(len(fit_rows), -1).astype(np.float32)
    _, (img_tr, img_te), k = pca_degrade(img_fit, [img_tr, img_te], float(p["image_pca_energy"]))
    img_tr = np.clip(np.rint(img_tr), 0, 255).astype(np.uint8)
    img_te = np.clip(np.rint(img_te), 0, 255).astype(np.uint8)

    # --- audio pools -----------------------------------------------------------------------
    files = fsdd_recordings(raw_dir, p)
    info = [parse_fsdd_name(f.name) for f in files]
    held = p["heldout_speaker"]
    train_pool: dict[int, list[int]] = {}
    test_pool: dict[int, list[int]] = {}
    for i, (digit, spk, take) in enumerate(info):
        if held is not None:  # held-out speaker: all its takes are test audio, never train
            if spk == held:
                test_pool.setdefault(digit, []).append(i)
            elif take not in FSDD_TEST_TAKES:
                train_pool.setdefault(digit, []).append(i)
        elif take in FSDD_TEST_TAKES:
            test_pool.setdefault(digit, []).append(i)
        else:
            train_pool.setdefault(digit, []).append(i)
    tr_lab, te_lab = tr_y[tr_rows].astype(np.int64), te_y[te_rows].astype(np.int64)
    pools_tr = {d: np.array(v) for d, v in train_pool.items()}
    pools_te = {d: np.array(v) for d, v in test_pool.items()}
    aud_idx_tr = balanced_pairing(tr_lab, pools_tr, rng, f"{raw_dir / 'fsdd'} (train takes 5-49)")
    aud_idx_te = balanced_pairing(te_lab, pools_te, rng, f"{raw_dir / 'fsdd'} (test takes 0-4)")

    used = np.unique(np.concatenate([aud_idx_tr, aud_idx_te]))
    waves = np.stack([_center_window(read_wav(files[i], FSDD_RATE), FSDD_RATE) for i in used])
    pos = {int(u): j for j, u in enumerate(used)}
    if p["audio_snr_db"] is None:
        specs = log_spectrogram_112(waves)
        aud_tr = specs[[pos[int(i)] for i in aud_idx_tr]]
        aud_te = specs[[pos[int(i)] for i in aud_idx_te]]
    else:  # fresh noise per sample: one spectrogram per paired sample
        def noisy(idx: np.ndarray) -> np.ndarray:
            out = np.empty((len(idx), SPEC_SIZE, SPEC_SIZE), np.uint8)
            for s in range(0, len(idx), 2048):
                w = waves[[pos[int(i)] for i in idx[s: s + 2048]]]
                out[s: s + 2048] = log_spectrogram_112(_add_noise(w, float(p["audio_snr_db"]), rng))
            return out
        aud_tr, aud_te = noisy(aud_idx_tr), noisy(aud_idx_te)

    # --- MultiBench layout --------------------------------------------------------------------
    if p["write_multibench"]:
        mb = out_dir / "multibench"
        (mb / "image").mkdir(parents=True, exist_ok=True)
        (mb / "audio").mkdir(parents=True, exist_ok=True)
        np.save(mb / "image" / "train_data.npy", img_tr)
        np.save(mb / "image" / "test_data.npy", img_te)
        np.save(mb / "audio" / "train_data.npy", aud_tr)
        np.save(mb / "audio" / "test_data.npy", aud_te)
        np.save(mb / "train_labels.npy", tr_lab)
        np.save(mb / "test_labels.npy", te_lab)

    # --- prepared format ------------------------------------------------------------------
    stem = [f.stem for f in files]
    ids_tr = np.array([f"mtrain{r}_{stem[a]}" for r, a in zip(tr_rows, aud_idx_tr)])
    ids_te = np.array([f"mtest{r}_{stem[a]}" for r, a in zip(te_rows, aud_idx_te)])
    is_val = tr_rows >= val_start
    tr_sel, va_sel = np.flatnonzero(~is_val), np.flatnonzero(is_val)

    def vis(a: np.ndarray) -> np.ndarray:
        return (a.reshape(len(a), 1, 28, 28).astype(np.float16) / np.float16(255))

    def aud(a: np.ndarray) -> np.ndarray:
        return (a[:, None].astype(np.float16) / np.float16(255))

    splits = {
        "train": {"audio": aud(aud_tr[tr_sel]), "visual": vis(img_tr[tr_sel])},
        "val": {"audio": aud(aud_tr[va_sel]), "visual": vis(img_tr[va_sel])},
        "test": {"audio": aud(aud_te), "visual": vis(img_te)},
    }
    labels = {"train": tr_lab[tr_sel], "val": tr_lab[va_sel], "test": te_lab}
    ids = {"train": ids_tr[tr_sel], "val": ids_tr[va_sel], "test": ids_te}
    extra = {
        "pca_components": k,
        "multibench_dir": "multibench" if p["write_multibench"] else None,
        "multibench_val_rows": n_val_rows,
        "fsdd_commit": FSDD_COMMIT,
    }
    return write_prepared(out_dir, dataset=NAME, task="classification", classes=list(CLASSES), splits=splits,
                          labels=labels, ids=ids, params=p, extra=extra, dtype="float16")


register(DatasetSpec(
    name=NAME,
    task="classification",
    modalities=("audio", "visual"),
    classes=CLASSES,
    default_encoders={"audio": {"name": "smallcnn"}, "visual": {"name": "smallcnn"}},
    acquire=acquire,
    prepare=prepare,
    default_params=DEFAULT_PARAMS,
    description="AV-MNIST rebuilt from public MNIST (PCA 25 % energy) + FSDD spoken digits (112x112 spectrograms); test audio only from FSDD takes 0-4",
    source="MNIST (ossci-datasets S3 mirror) + FSDD (github.com/Jakobovski/free-spoken-digit-dataset @26eb9aa), SHA-256 verified",
    license="MNIST: CC BY-SA 3.0 (Y. LeCun, C. Cortes); FSDD: CC BY-SA 4.0",
    disk="~40 MB raw; ~2.5 GB prepared at full size (use subset_train/subset_test for CPU runs)",
))
