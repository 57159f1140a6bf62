"""Two fully synthetic fixture datasets, generated in milliseconds from a seed.

Nothing is downloaded or cached: ``acquire`` does nothing (``source: generate``; the global
default ``download`` is accepted and means the same) and ``prepare`` draws every array from
``numpy.random.default_rng(seed)``. Both are used by the tests and by the experiment matrix to
exercise the parts of the pipeline that avdigits does not (three modalities, sequences,
regression).

``tiny3`` — 3-modality sequence classification (UR-FUNNY / IEMOCAP stand-in)
    Modalities ``audio`` (T, 8), ``visual`` (T, 12), ``text`` (T, 16), T = ``seq_len`` = 10,
    4 classes, balanced. Recipe: each modality m has one prototype sequence per class, a smooth
    random curve per feature (a sum of 3 sinusoids with random frequency/phase, scaled to unit
    RMS). A sample of class y shows, in each modality independently, the prototype of class y —
    or, with probability ``confusion[m]``, the prototype of a uniformly random class (the
    modality is then uninformative for that sample) — circularly shifted in time by a random
    ``-max_shift..max_shift`` steps, scaled by a random gain in [0.8, 1.2], plus Gaussian noise of
    std ``noise[m]``. The confusion rates set each modality's accuracy ceiling
    (≈ 1 − q·(K−1)/K): by default ``text`` is dominant (q = 0.1, ceiling ≈ 92 %), ``audio`` is
    intermediate (q = 0.4, ≈ 70 %) and ``visual`` weak (q = 0.6, ≈ 55 %). Because the
    corruption is independent per modality, fusing them beats every single one.
    Default encoders: the sequence transformer at CPU widths (width 32, 4 heads, 2 layers).

``tinyreg`` — image + tabular regression (MIS-ME soil-moisture stand-in)
    Target ``vwc`` (volumetric water content) ~ Beta(2, 2) on [0, 1], i.e. 5–45 % VWC scaled to
    [0, 1] with fixed bounds. ``tabular``: the 8 MIS-ME meteorological columns, in physical
    units before standardization — air_temperature (°C) = 26 − 8·vwc + N(0, 3.5);
    relative_humidity (%) = 45 + 35·vwc + N(0, 12), clipped to [5, 100];
    precipitation (mm/24 h) = Gamma(shape 0.6 + 2·vwc, scale 3); solar_flux_density (W/m²) =
    650 − 250·vwc + N(0, 150), ≥ 0; wind_speed (m/s) = Gamma(2, 1.5) − 0.8·vwc, ≥ 0;
    barometric_pressure (kPa) = 101.3 − 0.6·vwc + N(0, 0.6); tilt_north_south and
    tilt_west_east (degrees) = N(0, 2) — pure nuisance, as real sensor tilt. Columns are
    standardized with training-split mean/std. ``image``: a 3 × 32 × 32 soil-patch texture in
    [0, 1]: a dry-soil base colour (0.62, 0.48, 0.33) + N(0, 0.04) per channel (soil type,
    nuisance) darkened by wetness (× (1 − 0.45·vwc)) and slightly less saturated when dry
    (saturation × (0.9 + 0.2·vwc)), multiplied by a random illumination gain in [0.75, 1.25]
    (nuisance), plus a low-pass "clod" texture whose amplitude shrinks as the soil
    gets wetter (wet soil is smoother; amplitude 0.1·(1 − 0.6·vwc) × U(0.7, 1.3) roughness) and
    fine pixel grain (std 0.03). The image is the stronger modality
    (brightness is a clean cue up to the illumination nuisance); the meteorological columns are
    informative but noisy, as in MIS-ME.
    Default encoders: image ``smallcnn`` — the paper uses MobileNetV2, which is too slow for
    2-core CPU runs; switch with ``model.encoders.image: {name: mobilenetv2}`` — and tabular
    ``mlp`` with hidden [64, 64].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .prepared import write_prepared
from .registry import DatasetSpec, register

__all__ = ["TINY3_DEFAULTS", "TINYREG_DEFAULTS", "TABULAR_COLUMNS", "make_tiny3", "make_tinyreg"]

TABULAR_COLUMNS = ("air_temperature", "relative_humidity", "precipitation", "solar_flux_density",
                   "wind_speed", "barometric_pressure", "tilt_north_south", "tilt_west_east")
_SPLITS = ("train", "val", "test")

TINY3_DEFAULTS: dict = {
    "seed": 0,
    "n_train": 600,
    "n_val": 200,
    "n_test": 200,
    "seq_len": 10,
    "num_classes": 4,
    "dims": {"audio": 8, "visual": 12, "text": 16},
    "confusion": {"audio": 0.4, "visual": 0.6, "text": 0.1},
    "noise": {"audio": 1.0, "visual": 1.0, "text": 1.0},
    "max_shift": 2,
}

TINYREG_DEFAULTS: dict = {
    "seed": 0,
    "n_train": 300,
    "n_val": 100,
    "n_test": 100,
    "image_size": 32,
}


def _acquire_nothing(name: str):
    def acquire(params: dict, raw_dir: str | Path, source: str, source_dir: str | Path | None) -> None:
        if source not in ("generate", "download"):
            raise ConfigError(f"key 'dataset.source': {name} is generated from its seed (use source: generate), got '{source}'")
    return acquire


def _positive_int(p: dict, key: str, name: str, minimum: int = 1) -> int:
    v = p[key]
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise ConfigError(f"key 'dataset.params.{key}': {name} needs an integer >= {minimum}, got {v!r}")
    return v


# ------------------------------------------------------------------------------------------
# tiny3

def _per_modality(p: dict, key: str, mods: list[str], lo: float, hi: float | None) -> dict[str, float]:
    d = p[key]
    if not isinstance(d, dict) or set(d) != set(mods):
        raise ConfigError(f"key 'dataset.params.{key}': needs one value per modality {mods}, got {d!r}")
    for m, v in d.items():
        if not isinstance(v, (int, float)) or v < lo or (hi is not None and v > hi):
            raise ConfigError(f"key 'dataset.params.{key}.{m}': must be in [{lo}, {hi if hi is not None else 'inf'}], got {v!r}")
    return {m: float(d[m]) for m in mods}


def make_tiny3(params: dict) -> tuple[dict, dict, dict]:
    """Generate tiny3: ({split: {modality: (N, T, F) float32}}, {split: labels}, {split: ids})."""
    p = dict(TINY3_DEFAULTS, **params)
    dims = p["dims"]
    if not isinstance(dims, dict) or not dims:
        raise ConfigError(f"key 'dataset.params.dims': needs {{modality: feature size}}, got {dims!r}")
    mods = list(dims)
    for m, f in dims.items():
        if not isinstance(f, int) or f < 1:
            raise ConfigError(f"key 'dataset.params.dims.{m}': must be a positive integer, got {f!r}")
    conf = _per_modality(p, "confusion", mods, 0.0, 1.0)
    noise = _per_modality(p, "noise", mods, 0.0, None)
    T = _positive_int(p, "seq_len", "tiny3", 2)
    K = _positive_int(p, "num_classes", "tiny3", 2)
    shift = int(p["max_shift"])
    if shift < 0 or shift >= T:
        raise ConfigError(f"key 'dataset.params.max_shift': must be in [0, seq_len), got {shift}")
    sizes = {s: _positive_int(p, f"n_{s}", "tiny3", K) for s in _SPLITS}
    rng = np.random.default_rng(int(p["seed"]))

    t = np.arange(T, dtype=np.float64)[None, :, None]
    protos: dict[str, np.ndarray] = {}
    for m in mods:  # (K, T, F) smooth curves, unit RMS per class
        F_ = dims[m]
        freq = rng.uniform(0.05, 0.35, size=(K, 3, 1, F_))
        phase = rng.uniform(0, 2 * np.pi, size=(K, 3, 1, F_))
        amp = rng.normal(size=(K, 3, 1, F_))
        curve = (amp * np.sin(2 * np.pi * freq * t[None] + phase)).sum(axis=1)
        curve /= np.sqrt((curve ** 2).mean(axis=(1, 2), keepdims=True)) + 1e-12
        protos[m] = curve.astype(np.float32)

    splits, labels, ids = {}, {}, {}
    for s in _SPLITS:
        n = sizes[s]
        y = rng.permutation(np.arange(n) % K)
        x = {}
        for m in mods:
            shown = np.where(rng.random(n) < conf[m], rng.integers(0, K, n), y)
            seq = protos[m][shown]                                   # (n, T, F)
            k = rng.integers(-shift, shift + 1, n)
            rows = (np.arange(T)[None, :] - k[:, None]) % T          # circular time shift
            seq = np.take_along_axis(seq, rows[:, :, None], axis=1)
            gain = rng.uniform(0.8, 1.2, (n, 1, 1)).astype(np.float32)
            x[m] = (gain * seq + rng.normal(0, noise[m], seq.shape)).astype(np.float32)
        splits[s] = x
        labels[s] = y.astype(np.int64)
        ids[s] = np.array([f"{s}{i:05d}" for i in range(n)])
    return splits, labels, ids


def _prepare_tiny3(params: dict, raw_dir: str | Path, out_dir: str | Path) -> dict:
    p = dict(TINY3_DEFAULTS, **params)
    splits, labels, ids = make_tiny3(p)
    return write_prepared(out_dir, dataset="tiny3", task="classification",
                          classes=[f"c{i}" for i in range(int(p["num_classes"]))], splits=splits,
                          labels=labels, ids=ids, params=p, dtype="float32")


# ------------------------------------------------------------------------------------------
# tinyreg

def _lowpass(noise: np.ndarray, cutoff: float) -> np.ndarray:
    """Gaussian low-pass of (N, H, W) noise in the Fourier domain, renormalized to unit std."""
    h, w = noise.shape[-2:]
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    g = np.exp(-(fx ** 2 + fy ** 2) / (2 * cutoff ** 2))
    out = np.fft.irfft2(np.fft.rfft2(noise) * g, s=(h, w))
    return out / (out.std(axis=(-2, -1), keepdims=True) + 1e-12)


def make_tinyreg(params: dict) -> tuple[dict, dict, dict, dict]:
    """Generate tinyreg: (splits, targets in [0, 1], ids, standardization stats of the tabular columns)."""
    p = dict(TINYREG_DEFAULTS, **params)
    sizes = {s: _positive_int(p, f"n_{s}", "tinyreg", 2) for s in _SPLITS}
    S = _positive_int(p, "image_size", "tinyreg", 8)
    rng = np.random.default_rng(int(p["seed"]))
    raw: dict[str, dict] = {}
    for s in _SPLITS:
        n = sizes[s]
        v = rng.beta(2.0, 2.0, n)
        tab = np.stack([
            26.0 - 8.0 * v + rng.normal(0, 3.5, n),
            np.clip(45.0 + 35.0 * v + rng.normal(0, 12.0, n), 5.0, 100.0),
            rng.gamma(0.6 + 2.0 * v, 3.0),
            np.clip(650.0 - 250.0 * v + rng.normal(0, 150.0, n), 0.0, None),
            np.clip(rng.gamma(2.0, 1.5, n) - 0.8 * v, 0.0, None),
            101.3 - 0.6 * v + rng.normal(0, 0.6, n),
            rng.normal(0, 2.0, n),
            rng.normal(0, 2.0, n),
        ], axis=1)
        base = np.array([0.62, 0.48, 0.33])[None, :] + rng.normal(0, 0.04, (n, 3))  # soil type
        grey = base.mean(axis=1, keepdims=True)
        sat = 0.9 + 0.2 * v                                           # wetter → more saturated
        color = grey + (base - grey) * sat[:, None]                   # (n, 3)
        color = color * (1.0 - 0.45 * v)[:, None] * rng.uniform(0.75, 1.25, (n, 1))
        clods = _lowpass(rng.normal(size=(n, S, S)), 0.08)            # (n, S, S)
        grain = rng.normal(size=(n, 3, S, S))
        tex_amp = (0.10 * (1.0 - 0.6 * v) * rng.uniform(0.7, 1.3, n))[:, None, None, None]
        img = color[:, :, None, None] * (1.0 + tex_amp * clods[:, None] * 2.0) + 0.03 * grain
        raw[s] = {"image": np.clip(img, 0.0, 1.0).astype(np.float32), "tabular": tab, "y": v.astype(np.float32)}
    mu = raw["train"]["tabular"].mean(axis=0)
    sd = raw["train"]["tabular"].std(axis=0) + 1e-8
    splits = {s: {"image": r["image"], "tabular": ((r["tabular"] - mu) / sd).astype(np.float32)} for s, r in raw.items()}
    labels = {s: r["y"] for s, r in raw.items()}
    ids = {s: np.array([f"{s}{i:05d}" for i in range(sizes[s])]) for s in _SPLITS}
    stats = {c: {"mean": float(m), "std": float(d)} for c, m, d in zip(TABULAR_COLUMNS, mu, sd)}
    return splits, labels, ids, stats


def _prepare_tinyreg(params: dict, raw_dir: str | Path, out_dir: str | Path) -> dict:
    p = dict(TINYREG_DEFAULTS, **params)
    splits, labels, ids, stats = make_tinyreg(p)
    extra = {"tabular_columns": list(TABULAR_COLUMNS), "tabular_standardization": stats,
             "target": "vwc", "target_scaling": "vwc 5-45 % mapped linearly to [0, 1]"}
    return write_prepared(out_dir, dataset="tinyreg", task="regression", classes=None, splits=splits,
                          labels=labels, ids=ids, params=p, extra=extra, dtype="float32")


_TINY_TRANSFORMER = {"name": "transformer", "width": 32, "heads": 4, "layers": 2}

register(DatasetSpec(
    name="tiny3",
    task="classification",
    modalities=("audio", "visual", "text"),
    classes=tuple(f"c{i}" for i in range(TINY3_DEFAULTS["num_classes"])),
    default_encoders={m: dict(_TINY_TRANSFORMER) for m in ("audio", "visual", "text")},
    acquire=_acquire_nothing("tiny3"),
    prepare=_prepare_tiny3,
    default_params=TINY3_DEFAULTS,
    description="synthetic 3-modality sequence classification (audio (10,8), visual (10,12), text (10,16); 4 classes; text dominant)",
    source="generated from the seed (no files)",
    license="synthetic (MIT, part of g2d)",
    disk="< 1 MB",
))

register(DatasetSpec(
    name="tinyreg",
    task="regression",
    modalities=("image", "tabular"),
    classes=None,
    default_encoders={"image": {"name": "smallcnn"}, "tabular": {"name": "mlp", "hidden": [64, 64]}},
    acquire=_acquire_nothing("tinyreg"),
    prepare=_prepare_tinyreg,
    default_params=TINYREG_DEFAULTS,
    description="synthetic MIS-ME-like soil-moisture regression: soil-patch image (3x32x32) + 8 meteorological columns -> vwc in [0,1] "
                "(paper image encoder: MobileNetV2; default smallcnn for CPU)",
    source="generated from the seed (no files)",
    license="synthetic (MIT, part of g2d)",
    disk="~8 MB",
))
