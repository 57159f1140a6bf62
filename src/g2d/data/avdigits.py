"""``avdigits``: the embedded audio-visual digits dataset (AV-MNIST-style, built offline).

How avdigits is built
---------------------
avdigits is a small AV-MNIST-like dataset that needs nothing but what ``pip install g2d``
brings. The **visual** modality is the 1 797 real 8 × 8 handwritten digits that ship inside
scikit-learn (``sklearn.datasets.load_digits``, no download). As in AV-MNIST, the images are
degraded by projecting them onto the principal components (fitted on the training split only)
that keep ``image_pca_energy`` of the variance, then upsampled to ``image_size`` ×
``image_size`` (default 28 × 28) with optional Gaussian pixel noise ``image_noise``. The
**audio** modality is the spoken words "zero" … "nine" synthesized offline with eSpeak NG (the
``espeakng-loader`` wheel, through ctypes) in several voices, speaking rates and pitches: every
distinct (digit, voice, rate, pitch) utterance (default 8 voices × 3 rates × 3 pitches = 72 per
digit) is synthesized once at 22 050 Hz, each from a freshly initialized synthesizer so the wav
is reproducible, and cached under ``<raw_dir>/audio/`` (the acquire step, ``source=generate``,
~6 s; re-runs verify the cache by SHA-256 and only synthesize what is missing). Prepare
resamples each utterance to 8 kHz, trims its silence, places it at a seeded random offset in a
one-second window, adds white noise at ``audio_snr_db`` dB (fresh, seeded noise per sample) and
computes a 40-band log-mel spectrogram, giving a 1 × 40 × 40 input. Each image is paired with an
utterance of the same digit by a seeded balanced sampler (``n_repeats`` > 1 pairs each image
with several clips). The split is a seeded, stratified 70/15/15 train/val/test split of the
images. Both modalities are standardized with scalar mean/std of the training split; prepare
takes a few seconds. The default knobs (``image_pca_energy`` 0.45 = 4 of 64 components,
``audio_snr_db`` −6) make the visual modality clearly dominant, as in AV-MNIST (teachers 65 %
image vs 43 % audio there): unimodal ``smallcnn`` teachers trained as in ``config/config.yaml``
(SGD lr 0.01, 30 epochs) reach about 88 % (visual) vs 54 % (audio) test accuracy, and in joint
late-fusion training the audio branch alone reaches only about 27 % — the imbalance G2D
addresses. With ``audio_source: fsdd`` (and ``source: local`` or ``download``) the audio comes
from the real Free Spoken Digit Dataset recordings instead (test images get audio from FSDD
takes 0–4 only, train/val from takes 5–49).

Config: ``dataset.name: avdigits``; ``dataset.source`` ``generate`` (or the global default
``download``, which means the same here since nothing is downloaded for eSpeak audio) or
``local`` / ``download`` with ``dataset.params.audio_source: fsdd``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ConfigError, DataError
from .avmnist_fsdd import (FSDD_RATE, FSDD_TEST_TAKES, acquire_fsdd, balanced_pairing, fsdd_recordings,
                           parse_fsdd_name, pca_degrade, read_wav, stratified_order)
from .prepared import write_prepared
from .registry import DatasetSpec, register

__all__ = ["Synthesizer", "synthesize", "DIGIT_WORDS", "DEFAULT_PARAMS", "acquire", "prepare"]

NAME = "avdigits"
CLASSES = tuple(str(d) for d in range(10))
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
INDEX_FILE = "index.tsv"
_INDEX_COLUMNS = ("file", "digit", "word", "voice", "rate", "pitch", "sample_rate", "samples", "sha256", "espeak")

DEFAULT_PARAMS: dict = {
    "seed": 0,
    "audio_source": "espeak",            # espeak (offline, generated) | fsdd (real recordings)
    # visual
    "image_size": 28,
    "image_pca_energy": 0.45,            # fraction of PCA variance kept (4 of 64 components; AV-MNIST: 0.25 of MNIST)
    "image_noise": 0.0,                  # std of Gaussian pixel noise (pixel range [0, 1])
    # audio synthesis grid (espeak)
    "voices": ["en-us", "en+m3", "en+f2", "en-gb-x-rp+f4", "en+klatt", "en-029", "en-gb-scotland+m1", "en-us+f3"],
    "rates": [140, 175, 210],            # words per minute
    "pitches": [35, 50, 65],             # 0..100
    # audio features
    "sample_rate": 8000,
    "clip_seconds": 1.0,
    "n_mels": 40,
    "n_frames": 40,
    "audio_snr_db": -6.0,                # white noise level (None = clean)
    # pairing / split
    "n_repeats": 1,                      # audio clips paired with each image
    "split": [0.7, 0.15, 0.15],          # train / val / test fractions (stratified by digit)
    # fsdd source
    "manifest": None,                    # FSDD checksum manifest (default: packaged avmnist_fsdd.tsv)
    "fsdd_dir": None,                    # source=local: folder with the FSDD wavs
    "download_workers": 8,
}


# ------------------------------------------------------------------------------------------
# eSpeak NG through ctypes
#
# libespeak-ng keeps synthesis state in C statics that no API call resets (e.g. the pitch-flutter
# phase in wavegen.c advances with every sample ever synthesized), so the same request gives
# slightly different samples depending on what the process synthesized before. To make every
# utterance a pure function of (text, voice, rate, pitch), synthesis runs in a small helper
# process (stdlib + ctypes only) that initializes eSpeak once and forks a child per utterance:
# each child starts from the identical freshly-initialized state. Where fork is unavailable
# (Windows) the helper synthesizes in-process and the wavs are not bit-reproducible.

_WORKER = r"""
import ctypes, json, os, struct, sys
lib = ctypes.CDLL(sys.argv[1])
lib.espeak_Initialize.restype = ctypes.c_int
lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                             ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
lib.espeak_Info.restype = ctypes.c_char_p
lib.espeak_Info.argtypes = [ctypes.c_void_p]
out = sys.stdout.buffer
rate = lib.espeak_Initialize(2, 0, sys.argv[2].encode(), 0x8000)  # SYNCHRONOUS, DONT_EXIT
head = json.dumps({"sample_rate": rate, "version": (lib.espeak_Info(None) or b"?").decode()}).encode()
out.write(struct.pack("<i", len(head)) + head)
out.flush()
if rate <= 0:
    sys.exit(0)
seed = getattr(lib, "espeak_ng_SetRandSeed", None)
if seed is not None:
    seed.argtypes = [ctypes.c_long]
chunks = []
CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
def collect(wav, n, events):
    if n > 0 and wav:
        chunks.append(ctypes.string_at(wav, 2 * n))
    return 0
callback = CB(collect)
lib.espeak_SetSynthCallback(callback)
def synth(req):
    if lib.espeak_SetVoiceByName(req["voice"].encode()) != 0:
        return 2, b""
    lib.espeak_SetParameter(1, int(req["rate"]), 0)
    lib.espeak_SetParameter(3, int(req["pitch"]), 0)
    if seed is not None:
        seed(1)
    del chunks[:]
    text = req["text"].encode("utf-8") + b"\0"
    err = lib.espeak_Synth(text, len(text), 0, 1, 0, 1, None, None)
    lib.espeak_Synchronize()
    return (3 if err else 0), b"".join(chunks)
def framed(status, data):
    return struct.pack("<ii", status, len(data)) + data
for line in sys.stdin:
    req = json.loads(line)
    if hasattr(os, "fork"):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                payload = framed(*synth(req))
            except BaseException:
                payload = framed(4, b"")
            with os.fdopen(w, "wb") as f:
                f.write(payload)
            os._exit(0)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            payload = f.read()
        os.waitpid(pid, 0)
        if len(payload) < 8:
            payload = framed(4, b"")
    else:
        payload = framed(*synth(req))
    out.write(payload)
    out.flush()
"""


class Synthesizer:
    """eSpeak NG in a helper process; ``synth`` is deterministic per (text, voice, rate, pitch).

    Use as a context manager (or call :meth:`close`).
    """

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError:
            raise DataError("espeakng-loader: not installed; `pip install espeakng-loader==0.2.4` (needed to synthesize avdigits audio)") from None
        try:
            lib_path, data_path = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
        except RuntimeError as exc:
            raise DataError(f"espeakng-loader: {exc}") from None
        self._proc = subprocess.Popen([sys.executable, "-c", _WORKER, lib_path, data_path],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            n = struct.unpack("<i", self._read(4))[0]
            head = json.loads(self._read(n))
        except DataError:
            self.close()
            raise
        if head["sample_rate"] <= 0:
            self.close()
            raise DataError(f"{data_path}: eSpeak NG failed to initialize (code {head['sample_rate']})")
        self.sample_rate = int(head["sample_rate"])
        self.version = str(head["version"])

    def _read(self, n: int) -> bytes:
        data = self._proc.stdout.read(n) if n else b""  # type: ignore[union-attr]
        if len(data) != n:
            err = self._proc.stderr.read().decode(errors="replace").strip().splitlines() if self._proc.poll() is not None else []  # type: ignore[union-attr]
            raise DataError(f"eSpeak NG helper process failed ({err[-1] if err else 'no output'})")
        return data

    def synth(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        """int16 samples at ``self.sample_rate`` of ``text`` spoken by ``voice``."""
        req = json.dumps({"text": text, "voice": voice, "rate": int(rate), "pitch": int(pitch)}) + "\n"
        try:
            self._proc.stdin.write(req.encode())  # type: ignore[union-attr]
            self._proc.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError):
            raise DataError("eSpeak NG helper process died") from None
        status, n = struct.unpack("<ii", self._read(8))
        data = self._read(n)
        if status == 2:
            raise ConfigError(f"key 'dataset.params.voices': eSpeak NG has no voice {voice!r} (e.g. en-us, en+m3, en+f2, en-gb-x-rp+f4, en+klatt)")
        if status != 0 or not data:
            raise DataError(f"eSpeak NG: synthesis of {text!r} with voice {voice!r} failed (status {status})")
        return np.frombuffer(data, dtype="<i2").astype(np.int16)

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()  # type: ignore[union-attr]
                self._proc.wait(timeout=10)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        for f in (self._proc.stdout, self._proc.stderr):
            if f is not None:
                f.close()

    def __enter__(self) -> "Synthesizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def synthesize(text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50) -> tuple[np.ndarray, int]:
    """(float32 samples in [-1, 1], sample rate) of ``text`` synthesized with eSpeak NG."""
    with Synthesizer() as syn:
        return syn.synth(text, voice, rate, pitch).astype(np.float32) / 32768.0, syn.sample_rate


# ------------------------------------------------------------------------------------------
# params

def _slug(voice: str) -> str:
    return re.sub(r"[^A-Za-z0-9+-]", "-", voice)


def _utterance_name(digit: int, voice: str, rate: int, pitch: int) -> str:
    return f"{digit}_{_slug(voice)}_r{int(rate)}_p{int(pitch)}"


def _grid(p: dict) -> list[tuple[int, str, int, int]]:
    return [(d, v, int(r), int(pi)) for d in range(10) for v in p["voices"] for r in p["rates"] for pi in p["pitches"]]


def _check_params(p: dict) -> None:
    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"key 'dataset.params.{key}': {why}, got {p[key]!r}")

    if p["audio_source"] not in ("espeak", "fsdd"):
        raise bad("audio_source", "must be espeak or fsdd")
    for key in ("voices", "rates", "pitches"):
        if not isinstance(p[key], (list, tuple)) or not p[key]:
            raise bad(key, "must be a non-empty list")
    if any(not isinstance(v, str) or not v for v in p["voices"]):
        raise bad("voices", "must be eSpeak NG voice names")
    if any(not isinstance(r, int) or not 80 <= r <= 450 for r in p["rates"]):
        raise bad("rates", "must be integers in 80..450 (words per minute)")
    if any(not isinstance(x, int) or not 0 <= x <= 100 for x in p["pitches"]):
        raise bad("pitches", "must be integers in 0..100")
    if not isinstance(p["image_size"], int) or p["image_size"] < 8:
        raise bad("image_size", "must be an integer >= 8")
    if not isinstance(p["image_pca_energy"], (int, float)) or not 0 < p["image_pca_energy"] <= 1:
        raise bad("image_pca_energy", "must be in (0, 1]")
    if not isinstance(p["image_noise"], (int, float)) or p["image_noise"] < 0:
        raise bad("image_noise", "must be a number >= 0")
    if p["audio_snr_db"] is not None and not isinstance(p["audio_snr_db"], (int, float)):
        raise bad("audio_snr_db", "must be a number (dB) or null")
    if not isinstance(p["n_repeats"], int) or p["n_repeats"] < 1:
        raise bad("n_repeats", "must be an integer >= 1")
    for key in ("sample_rate", "n_mels", "n_frames"):
        if not isinstance(p[key], int) or p[key] < 8:
            raise bad(key, "must be an integer >= 8")
    if not isinstance(p["clip_seconds"], (int, float)) or p["clip_seconds"] <= 0:
        raise bad("clip_seconds", "must be > 0")
    sp = p["split"]
    if (not isinstance(sp, (list, tuple)) or len(sp) != 3 or any(not isinstance(x, (int, float)) or x <= 0 for x in sp)
            or abs(sum(sp) - 1) > 1e-6):
        raise bad("split", "must be three positive fractions (train, val, test) summing to 1")


# ------------------------------------------------------------------------------------------
# acquire

def _read_index(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}


def _write_index(path: Path, rows: dict[str, dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=_INDEX_COLUMNS, delimiter="\t", extrasaction="ignore")
        w.writeheader()
        for name in sorted(rows):
            w.writerow(rows[name])
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def acquire_espeak(params: dict, raw_dir: Path) -> list[Path]:
    """Synthesize every (digit, voice, rate, pitch) utterance of the grid into ``raw_dir/audio``.

    Wavs are written to a temp name and renamed; ``audio/index.tsv`` (written last, atomically)
    records each file's parameters and SHA-256. A re-run verifies the cached files against the
    index and synthesizes only the missing or corrupt ones.
    """
    import soundfile as sf

    audio = Path(raw_dir) / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    index_path = audio / INDEX_FILE
    index = _read_index(index_path)
    out: list[Path] = []
    todo = []
    for digit, voice, rate, pitch in _grid(params):
        fname = _utterance_name(digit, voice, rate, pitch) + ".wav"
        f = audio / fname
        row = index.get(fname)
        out.append(f)
        if not (row is not None and f.is_file() and _sha256(f) == row.get("sha256")):
            todo.append((digit, voice, rate, pitch, fname, f))
    if not todo:
        return out
    with Synthesizer() as es:
        for digit, voice, rate, pitch, fname, f in todo:
            samples = es.synth(DIGIT_WORDS[digit], voice, rate, pitch)
            if np.abs(samples).max() < 100:
                raise DataError(f"{f}: eSpeak NG produced silence for {DIGIT_WORDS[digit]!r} ({voice}, rate {rate}, pitch {pitch})")
            tmp = f.with_name(f".{fname}.tmp-{os.getpid()}.wav")
            sf.write(str(tmp), samples, es.sample_rate, subtype="PCM_16")
            os.replace(tmp, f)
            index[fname] = {"file": fname, "digit": digit, "word": DIGIT_WORDS[digit], "voice": voice, "rate": rate,
                            "pitch": pitch, "sample_rate": es.sample_rate, "samples": len(samples), "sha256": _sha256(f),
                            "espeak": es.version}
    _write_index(index_path, index)
    return out


def acquire(params: dict, raw_dir: str | Path, source: str, source_dir: str | Path | None) -> None:
    p = dict(DEFAULT_PARAMS, **params)
    _check_params(p)
    raw_dir = Path(raw_dir)
    if p["audio_source"] == "espeak":
        if source not in ("generate", "download"):
            raise ConfigError(f"key 'dataset.source': avdigits' eSpeak audio is generated offline (source: generate); "
                              f"source '{source}' needs dataset.params.audio_source: fsdd")
        acquire_espeak(p, raw_dir)
    else:
        if source == "generate":
            raise ConfigError("key 'dataset.source': audio_source fsdd reads real recordings: use source local (with dataset.source_dir) or download")
        acquire_fsdd(p, raw_dir, source, source_dir)


# ------------------------------------------------------------------------------------------
# prepare

def _trim(x: np.ndarray, rel: float = 0.02) -> np.ndarray:
    """Drop leading/trailing samples quieter than ``rel`` × the peak."""
    loud = np.flatnonzero(np.abs(x) >= rel * (np.abs(x).max() + 1e-12))
    return x[loud[0]: loud[-1] + 1] if len(loud) else x


def _load_utterances(p: dict, raw_dir: Path) -> tuple[list[np.ndarray], np.ndarray, list[str], np.ndarray]:
    """(waves at p['sample_rate'], digit per wave, name per wave, is-FSDD-test-take per wave)."""
    import soundfile as sf
    import torch
    import torchaudio.functional as AF

    sr = int(p["sample_rate"])
    waves: list[np.ndarray] = []
    digits: list[int] = []
    names: list[str] = []
    test_take: list[bool] = []
    if p["audio_source"] == "espeak":
        audio = raw_dir / "audio"
        index = _read_index(audio / INDEX_FILE)
        for digit, voice, rate, pitch in _grid(p):
            fname = _utterance_name(digit, voice, rate, pitch) + ".wav"
            f = audio / fname
            if fname not in index or not f.is_file():
                raise DataError(f"{f}: synthesized utterance missing; run `g2d acquire` first")
            try:
                x, native = sf.read(str(f), dtype="float32")
            except (RuntimeError, OSError) as exc:  # soundfile.LibsndfileError is a RuntimeError
                raise DataError(f"{f}: cannot read wav ({exc})") from None
            x = _trim(x)
            if native != sr:
                x = AF.resample(torch.from_numpy(x), native, sr).numpy()
            waves.append(x.astype(np.float32))
            digits.append(digit)
            names.append(fname[:-4])
            test_take.append(False)
    else:
        for f in fsdd_recordings(raw_dir, p):
            digit, _spk, take = parse_fsdd_name(f.name)
            x = read_wav(f, FSDD_RATE)
            if sr != FSDD_RATE:
                x = AF.resample(torch.from_numpy(x), FSDD_RATE, sr).numpy()
            waves.append(_trim(x).astype(np.float32))
            digits.append(digit)
            names.append(f.stem)
            test_take.append(take in FSDD_TEST_TAKES)
    return waves, np.array(digits), names, np.array(test_take)


def _log_mel(clips: np.ndarray, p: dict) -> np.ndarray:
    """(B, L) waves → (B, 1, n_mels, n_frames) log-mel (dB, clipped 80 dB under each clip's peak)."""
    import torch
    import torchaudio

    L = clips.shape[1]
    hop = max(1, L // int(p["n_frames"]))
    win = min(512, max(256, hop))  # 32 ms at 8 kHz; never shorter than the hop
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=int(p["sample_rate"]), n_fft=512, win_length=win,
                                               hop_length=hop, f_min=20.0, f_max=int(p["sample_rate"]) / 2,
                                               n_mels=int(p["n_mels"]), power=2.0)
    with torch.no_grad():
        S = mel(torch.from_numpy(np.ascontiguousarray(clips, dtype=np.float32)))[..., : int(p["n_frames"])]
        db = 10.0 * torch.log10(S.clamp_min(1e-10))
        db = torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - 80.0)
    return db.numpy()[:, None].astype(np.float32)


def _audio_features(utt: np.ndarray, waves: Sequence[np.ndarray], p: dict, rng: np.random.Generator) -> np.ndarray:
    """One clip per paired utterance index: random placement in the window, noise, log-mel."""
    L = int(round(float(p["clip_seconds"]) * int(p["sample_rate"])))
    clips = np.zeros((len(utt), L), dtype=np.float32)
    power = np.empty(len(utt), dtype=np.float64)
    for i, u in enumerate(utt):
        w = waves[int(u)]
        if len(w) >= L:
            s = (len(w) - L) // 2
            clips[i] = w[s: s + L]
        else:
            off = int(rng.integers(0, L - len(w) + 1))
            clips[i, off: off + len(w)] = w
        power[i] = float(np.mean(w.astype(np.float64) ** 2)) + 1e-12
    if p["audio_snr_db"] is not None:
        sigma = np.sqrt(power / 10.0 ** (float(p["audio_snr_db"]) / 10.0)).astype(np.float32)
        clips += rng.standard_normal(clips.shape).astype(np.float32) * sigma[:, None]
    feats = np.empty((len(utt), 1, int(p["n_mels"]), int(p["n_frames"])), dtype=np.float32)
    for s in range(0, len(utt), 1024):
        feats[s: s + 1024] = _log_mel(clips[s: s + 1024], p)
    return feats


def _images(X: np.ndarray, p: dict, split_idx: dict[str, np.ndarray], rng: np.random.Generator) -> tuple[dict[str, np.ndarray], int]:
    """PCA-degrade (fit on train), upsample and add pixel noise to the (N, 8, 8) digits in [0, 1]."""
    import torch
    import torch.nn.functional as F

    names = list(split_idx)
    tr, others, k = pca_degrade(X[split_idx["train"]], [X[split_idx[s]] for s in names[1:]], float(p["image_pca_energy"]))
    out = {"train": tr, **{s: o for s, o in zip(names[1:], others)}}
    size = int(p["image_size"])
    for s, a in out.items():
        t = torch.from_numpy(a)[:, None]
        if size != 8:
            t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
        a = t.numpy().astype(np.float32)
        if p["image_noise"]:
            a = a + rng.standard_normal(a.shape).astype(np.float32) * float(p["image_noise"])
        out[s] = a
    return out, k


def prepare(params: dict, raw_dir: str | Path, out_dir: str | Path) -> dict:
    p = dict(DEFAULT_PARAMS, **params)
    _check_params(p)
    raw_dir = Path(raw_dir)
    split_rng, pair_rng, audio_rng, image_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(int(p["seed"])).spawn(4))

    from sklearn.datasets import load_digits

    digits = load_digits()
    X = digits.images.astype(np.float32) / 16.0  # (1797, 8, 8) in [0, 1]
    y_all = digits.target.astype(np.int64)
    order = stratified_order(y_all, split_rng)
    n = len(order)
    n_tr = int(round(p["split"][0] * n))
    n_va = int(round(p["split"][1] * n))
    split_idx = {"train": np.sort(order[:n_tr]), "val": np.sort(order[n_tr: n_tr + n_va]), "test": np.sort(order[n_tr + n_va:])}

    imgs, k = _images(X, p, split_idx, image_rng)
    waves, utt_digit, utt_names, utt_test = _load_utterances(p, raw_dir)
    if p["audio_source"] == "fsdd":  # keep FSDD's own test takes for the test split
        pools = {"train": ~utt_test, "val": ~utt_test, "test": utt_test}
    else:
        pools = {s: np.ones(len(waves), bool) for s in split_idx}

    reps = int(p["n_repeats"])
    splits: dict[str, dict[str, np.ndarray]] = {}
    labels: dict[str, np.ndarray] = {}
    ids: dict[str, np.ndarray] = {}
    for s, idx in split_idx.items():
        lab = np.repeat(y_all[idx], reps)
        img_id = np.repeat(idx, reps)
        rep = np.tile(np.arange(reps), len(idx))
        pool = {d: np.flatnonzero(pools[s] & (utt_digit == d)) for d in range(10)}
        utt = balanced_pairing(lab, pool, pair_rng, f"{raw_dir} ({p['audio_source']} audio, {s} split)")
        splits[s] = {"audio": _audio_features(utt, waves, p, audio_rng), "visual": np.repeat(imgs[s], reps, axis=0)}
        labels[s] = lab
        ids[s] = np.array([f"d{i:04d}r{r}_{utt_names[u]}" for i, r, u in zip(img_id, rep, utt)])

    # scalar standardization with training statistics
    stats = {}
    for m in ("audio", "visual"):
        mu = float(splits["train"][m].mean())
        sd = float(splits["train"][m].std()) or 1.0
        stats[m] = {"mean": mu, "std": sd}
        for s in splits:
            splits[s][m] = ((splits[s][m] - mu) / sd).astype(np.float32)

    extra = {"pca_components": k, "standardization": stats, "utterances": len(waves)}
    if p["audio_source"] == "espeak":
        index = _read_index(raw_dir / "audio" / INDEX_FILE)
        extra["espeak_version"] = next(iter(index.values()), {}).get("espeak")
    return write_prepared(out_dir, dataset=NAME, task="classification", classes=list(CLASSES), splits=splits,
                          labels=labels, ids=ids, params=p, extra=extra, dtype="float32")


register(DatasetSpec(
    name=NAME,
    task="classification",
    modalities=("audio", "visual"),
    classes=CLASSES,
    default_encoders={"audio": {"name": "smallcnn"}, "visual": {"name": "smallcnn"}},
    acquire=acquire,
    prepare=prepare,
    default_params=DEFAULT_PARAMS,
    description="embedded AV-MNIST-style digits: sklearn's 1 797 real 8x8 handwritten digits (PCA-degraded, 28x28) "
                "paired with eSpeak NG spoken digits in noise (1x40x40 log-mel); visual dominant",
    source="generated offline: scikit-learn load_digits (bundled) + eSpeak NG via espeakng-loader (source: generate); "
           "optional FSDD audio (audio_source: fsdd)",
    license="sklearn digits: UCI Optical Recognition of Handwritten Digits (CC BY 4.0); eSpeak NG output; FSDD CC BY-SA 4.0",
    disk="~15 MB raw wavs, ~20 MB prepared",
))
