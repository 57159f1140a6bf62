"""acquire / prepare for the configured dataset, dispatched through the registry.

``prepare`` is idempotent: an existing prepared dataset whose recorded params hash matches the
config is reused; a stale one (params changed) is rebuilt. Building happens in a temp dir that
is renamed into place, so an interrupted prepare never leaves a half-written dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..config import config_hash, dataset_dirs
from ..errors import DataError
from .prepared import FORMAT_VERSION, atomic_dir
from .registry import get_dataset

__all__ = ["acquire", "prepare", "prepared_hash"]


# Parameters that change how preprocessing runs, not what it produces: not part of the hash.
RUNTIME_PARAMS = frozenset({"progress", "workers", "download_workers", "retries", "timeout"})


def prepared_hash(cfg: dict) -> str:
    spec = get_dataset(cfg["dataset"]["name"])
    params = {k: v for k, v in spec.params(cfg["dataset"]["params"]).items() if k not in RUNTIME_PARAMS}
    return config_hash({"dataset": spec.name, "params": params, "format": FORMAT_VERSION})


def acquire(cfg: dict, log=print) -> Path:
    d = cfg["dataset"]
    spec = get_dataset(d["name"])
    raw, _ = dataset_dirs(cfg)
    params = spec.params(d["params"])
    raw.mkdir(parents=True, exist_ok=True)
    spec.acquire(params, raw, d["source"], Path(d["source_dir"]) if d["source_dir"] else None)
    log(f"[g2d] raw files for {spec.name} ready under {raw}")
    return raw


def prepare(cfg: dict, force: bool = False, log=print) -> Path:
    d = cfg["dataset"]
    spec = get_dataset(d["name"])
    raw, out = dataset_dirs(cfg)
    h = prepared_hash(cfg)
    meta_p = out / "meta.json"
    if meta_p.is_file() and not force:
        try:
            meta = json.loads(meta_p.read_text())
        except json.JSONDecodeError:
            meta = {}
        if meta.get("params_hash") == h:
            log(f"[g2d] {out}: up to date (params hash {h})")
            return out
        log(f"[g2d] {out}: stale (params changed); rebuilding")
    acquire(cfg, log=log)
    params = spec.params(d["params"])
    try:
        with atomic_dir(out) as tmp:
            meta = spec.prepare(params, raw, tmp)
            if not (tmp / "meta.json").is_file():
                raise DataError(f"dataset {spec.name}: prepare() wrote no meta.json")
            meta = json.loads((tmp / "meta.json").read_text())
            meta["params_hash"] = h
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    except OSError as exc:  # disk full, permissions, ...: one line naming the file (temp dir already removed)
        raise DataError(f"{exc.filename or out}: cannot write the prepared dataset ({exc.strerror or exc})") from None
    return out
