"""MIS-ME soil-moisture regression: soil-patch image + 8 meteorological readings → VWC.

The data are a release asset of github.com/OSU-Complex-Systems/MIS-ME (the repository itself holds
code only). The user unpacks it as::

    <raw_dir>/labels.csv          one row per sample: image, vwc, air_temperature, relative_humidity,
                                  precipitation, solar_flux_density, wind_speed, barometric_pressure,
                                  tilt_north_south, tilt_west_east
    <raw_dir>/images/<image>      the soil-patch photos (jpg) named in the ``image`` column

(``csv`` and ``image_dir`` params rename them; a spreadsheet saved as .xlsx must be exported to csv.)

Preprocessing: images → RGB, ``Resize((image_size, image_size))``, ImageNet mean/std →
``(3, 224, 224)``; tabular → the 8 columns, missing values filled with the train mean, standardised
with train mean/std → ``(8,)``; target ``vwc`` min-max scaled to [0, 1] with the min/max over all
rows (stored in meta ``target_min``/``target_max``: ``vwc = y * (max - min) + min``). Rows are split
with a seeded permutation in the MIS-ME proportions 2701 : 900 : 900 (train : val : test).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from .cremad import IMAGENET_MEAN, IMAGENET_STD
from .download import gather_files
from .prepared import write_prepared
from .registry import DatasetSpec, register

__all__ = ["TABULAR_COLUMNS", "TARGET", "read_labels", "proportional_split", "unscale"]

TARGET = "vwc"
TABULAR_COLUMNS = ("air_temperature", "relative_humidity", "precipitation", "solar_flux_density", "wind_speed",
                   "barometric_pressure", "tilt_north_south", "tilt_west_east")
SPLIT_PROPORTIONS = (2701, 900, 900)
_HINT = ("download the MIS-ME data release (github.com/OSU-Complex-Systems/MIS-ME, Releases) and put the label "
         "spreadsheet as labels.csv (columns image, vwc + 8 meteorological columns) and the jpgs in images/")


def read_labels(path: Path) -> "Any":
    """The label table as a pandas DataFrame, checked for the required columns."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{path}: missing; {_HINT}")
    try:
        df = pd.read_csv(path)
    except Exception as exc:
        raise DataError(f"{path}: cannot read csv ({exc})") from None
    df.columns = [str(c).strip() for c in df.columns]
    miss = [c for c in ("image", TARGET, *TABULAR_COLUMNS) if c not in df.columns]
    if miss:
        raise DataError(f"{path}: missing columns {', '.join(miss)} (has {', '.join(df.columns)})")
    if df.empty:
        raise DataError(f"{path}: no rows")
    df["image"] = df["image"].astype(str).str.strip()
    if df["image"].duplicated().any():
        raise DataError(f"{path}: image {df['image'][df['image'].duplicated()].iloc[0]!r} listed twice")
    y = pd.to_numeric(df[TARGET], errors="coerce")
    if y.isna().any():
        raise DataError(f"{path}: column {TARGET} has a missing or non-numeric value (row {int(np.flatnonzero(y.isna())[0]) + 2})")
    return df


def proportional_split(n: int, seed: int, proportions: tuple[int, int, int] = SPLIT_PROPORTIONS) -> dict[str, np.ndarray]:
    """Seeded permutation of ``range(n)`` cut in the given proportions (val/test rounded)."""
    tot = sum(proportions)
    n_val = int(round(n * proportions[1] / tot))
    n_test = int(round(n * proportions[2] / tot))
    perm = np.random.default_rng(seed).permutation(n)
    return {"train": np.sort(perm[n_val + n_test:]), "val": np.sort(perm[:n_val]), "test": np.sort(perm[n_val:n_val + n_test])}


def unscale(y: np.ndarray, meta: dict) -> np.ndarray:
    """Map [0, 1] predictions back to VWC units with the prepared meta."""
    return np.asarray(y) * (meta["target_max"] - meta["target_min"]) + meta["target_min"]


def _image(path: Path, size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            img = im.convert("RGB").resize((size, size), Image.BILINEAR)
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from None
    a = np.asarray(img, dtype=np.float32) / 255.0
    return ((a - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


def acquire(params: dict, raw_dir: str | Path, source: str, source_dir: str | Path | None) -> None:
    raw = Path(raw_dir)
    csv_name, img_dir = params["csv"], params["image_dir"]
    gather_files("misme", [csv_name], raw, source, source_dir, _HINT)
    df = read_labels(raw / csv_name)
    files = [f"{img_dir}/{name}" for name in df["image"]]
    gather_files("misme", files, raw, source, source_dir, _HINT)


def prepare(params: dict, raw_dir: str | Path, out_dir: str | Path) -> dict:
    import pandas as pd

    raw = Path(raw_dir)
    df = read_labels(raw / params["csv"])
    img_dir = raw / params["image_dir"]
    absent = [n for n in df["image"] if not (img_dir / n).is_file()]
    if absent:
        raise DataError(f"{img_dir}: {len(absent)} images named in {params['csv']} are missing (e.g. {absent[0]}); {_HINT}")
    size = int(params["image_size"])
    if size < 8:
        raise ConfigError("key 'dataset.params.image_size': must be >= 8")
    parts = proportional_split(len(df), int(params["split_seed"]))
    if any(len(v) == 0 for v in parts.values()):
        raise DataError(f"{raw / params['csv']}: {len(df)} rows are too few for a train/val/test split")
    tab = df[list(TABULAR_COLUMNS)].apply(lambda c: pd.to_numeric(c, errors="coerce")).to_numpy(np.float64)
    tr = tab[parts["train"]]
    mean = np.nanmean(tr, axis=0)
    if np.isnan(mean).any():
        raise DataError(f"{raw / params['csv']}: column {TABULAR_COLUMNS[int(np.flatnonzero(np.isnan(mean))[0])]} has no values in the train split")
    tab = np.where(np.isnan(tab), mean, tab)
    std = tab[parts["train"]].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    tab = ((tab - mean) / std).astype(np.float32)
    y = df[TARGET].astype(float).to_numpy()
    lo, hi = float(y.min()), float(y.max())
    y01 = ((y - lo) / (hi - lo) if hi > lo else np.zeros_like(y)).astype(np.float32)
    names = df["image"].to_numpy().astype(str)
    splits, labels, ids = {}, {}, {}
    for s, idx in parts.items():
        splits[s] = {"image": np.stack([_image(img_dir / names[i], size) for i in idx]), "tabular": tab[idx]}
        labels[s] = y01[idx]
        ids[s] = names[idx]
    return write_prepared(out_dir, dataset="misme", task="regression", classes=None, splits=splits, labels=labels,
                          ids=ids, params=params, dtype=params["dtype"],
                          extra={"target": TARGET, "target_min": lo, "target_max": hi,
                                 "tabular_columns": list(TABULAR_COLUMNS), "tabular_mean": mean.tolist(),
                                 "tabular_std": std.tolist()})


DEFAULT_PARAMS: dict[str, Any] = {"csv": "labels.csv", "image_dir": "images", "image_size": 224, "split_seed": 999,
                                  "dtype": "float16"}

register(DatasetSpec(
    name="misme",
    task="regression",
    modalities=("image", "tabular"),
    classes=None,
    default_encoders={"image": {"name": "mobilenetv2"}, "tabular": {"name": "mlp"}},
    acquire=acquire,
    prepare=prepare,
    default_params=DEFAULT_PARAMS,
    description="MIS-ME soil moisture (VWC) regression: soil-patch photo 3×224×224 + 8 meteorological readings; target scaled to [0, 1]",
    source="github.com/OSU-Complex-Systems/MIS-ME data release (images + label spreadsheet), placed by the user",
    license="see the MIS-ME repository/release",
    disk="~1 GB raw images; ~1.4 GB prepared (float16)",
    manual=True,
))
