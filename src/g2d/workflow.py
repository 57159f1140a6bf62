"""Path and target helpers shared by the Snakemake rules and dvc.yaml generation.

The rules call these one-liners so that they hold no logic of their own: where each step's
outputs live, which runs the study needs, and the per-step hash that makes Snakemake rerun
exactly the steps whose config changed (passed as a rule ``params``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path

import yaml

from .config import RUN_HASH_EXCLUDE, config_hash, dataset_dirs, validate_config
from .data.registry import get_dataset

__all__ = ["write_config", "results", "prepared_meta", "teacher_dir", "run_dir", "modalities", "modset_modalities",
           "study_runs", "study_teachers", "variant_overrides", "step_key", "rule_resources", "student_targets", "dataset_config",
           "dataset_config_file", "extra_prepared_dirs", "extra_prepared_regex", "dataset_of_prepared"]

MAIN = "main"
ALL = "all"
_WRITTEN: dict[tuple[str, str], str] = {}


def write_config(config: dict, workdir: str | Path = ".") -> str:
    """Validate the Snakemake config with the g2d checks and write it where every rule reads it.

    The file name carries the config's hash, so concurrent workflows never share one; it is
    rewritten only when missing (same hash = same content).
    """
    key = (json.dumps(config, sort_keys=True, default=str), str(workdir))
    if key in _WRITTEN and Path(_WRITTEN[key]).is_file():
        return _WRITTEN[key]
    cfg = validate_config(dict(config), "snakemake config")
    h = config_hash(cfg)
    p = Path(workdir) / cfg["paths"]["results"] / ".configs" / f"{h}.yaml"
    _WRITTEN[key] = str(p)
    if not p.is_file():
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
        tmp.replace(p)
    return str(p)


def results(config: dict) -> str:
    return config["paths"]["results"]


def dataset(config: dict, dataset: str | None = None) -> str:
    """The dataset a path belongs to: ``dataset`` when given, else the config's ``dataset.name``."""
    return dataset or config["dataset"]["name"]


# ---- several datasets in one workflow ------------------------------------------------------------
# The config names ONE dataset (``dataset.name``, the "main" one). Tables bound to another dataset
# (Table 2 on a 3-modality set, Table 3 on a regression set) run their steps with a derived config:
# the main config "rebased" on that dataset (dataset-bound keys reset) with the overlay
# ``tables.datasets.<name>`` merged over it. Its runs live under ``results/<name>/...``.

#: keys reset when rebasing the config on another dataset (their values belong to the main dataset)
_DATASET_BOUND = {"dataset": {"params": {}, "raw_dir": None, "prepared_dir": None, "source_dir": None,
                              "modalities": None},
                  "model": {"encoders": {}}, "g2d": {"schedule": None}}
_DS_CACHE: dict[tuple[str, str], dict] = {}


def _merge(base: dict, over: dict) -> dict:
    """Deep merge; an empty mapping in ``over`` replaces (resets) the value."""
    out = dict(base)
    for k, v in (over or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) and v else v
    return out


def dataset_config(config: dict, dataset: str | None = None) -> dict:
    """The validated config the steps of ``dataset`` run with (the config itself for the main dataset).

    Other datasets: the main config with the dataset-bound keys reset (``dataset.params``, raw/prepared
    dirs, ``dataset.modalities``, ``model.encoders``, ``g2d.schedule``), then ``dataset.name`` set and
    the overlay ``tables.datasets.<dataset>`` (any config keys) merged over it.
    """
    main = config["dataset"]["name"]
    if dataset is None or dataset == main:
        return config
    key = (json.dumps(config, sort_keys=True, default=str), dataset)
    if key not in _DS_CACHE:
        over = ((config.get("tables") or {}).get("datasets") or {}).get(dataset) or {}
        cfg = _merge(copy.deepcopy(config), _DATASET_BOUND)
        cfg = _merge(cfg, {"dataset": {"name": dataset}})
        cfg = _merge(cfg, copy.deepcopy(over))
        cfg["dataset"]["name"] = dataset
        _DS_CACHE[key] = validate_config(cfg, f"config rebased on dataset '{dataset}' (tables.datasets.{dataset})")
    return _DS_CACHE[key]


def dataset_config_file(config: dict, dataset: str | None = None, workdir: str | Path = ".") -> str:
    """Path of the written, validated config for ``dataset`` (see :func:`dataset_config`)."""
    return write_config(dataset_config(config, dataset), workdir)


def prepared_meta(config: dict, dataset: str | None = None) -> str:
    return str(dataset_dirs(dataset_config(config, dataset))[1] / "meta.json")


def extra_prepared_dirs(config: dict) -> dict[str, str]:
    """{prepared dir: dataset} of the other datasets the tables use (rule prepare_extra_data).

    A dataset whose derived config is invalid (e.g. not installed) is left out here; the table
    that needs it reports the problem."""
    from .errors import ConfigError
    from .tables_plan import table_datasets
    main = config["dataset"]["name"]
    out = {}
    try:
        names = table_datasets(config)
    except ConfigError:
        return out
    for d in names:
        if d == main:
            continue
        try:
            out[str(dataset_dirs(dataset_config(config, d))[1])] = d
        except ConfigError:
            continue
    return out


def extra_prepared_regex(config: dict) -> str:
    """Wildcard constraint matching exactly the prepared dirs of :func:`extra_prepared_dirs`."""
    dirs = extra_prepared_dirs(config)
    return "|".join(re.escape(d) for d in dirs) if dirs else "(?!x)x"


def dataset_of_prepared(config: dict, prepared: str) -> str:
    return extra_prepared_dirs(config)[prepared]


def modalities(config: dict, dataset: str | None = None) -> list[str]:
    cfg = dataset_config(config, dataset)
    return list(cfg["dataset"]["modalities"] or get_dataset(cfg["dataset"]["name"]).modalities)


def modset_modalities(config: dict, modset: str, dataset: str | None = None) -> list[str]:
    return modalities(config, dataset) if modset == ALL else modset.split("+")


def teacher_dir(config: dict, modality: str, seed, dataset: str | None = None) -> str:
    return f"{results(config)}/{_ds(config, dataset)}/teachers/{modality}/s{seed}"


def run_dir(config: dict, method: str, fusion: str, seed, modset: str = ALL, variant: str = MAIN,
            dataset: str | None = None) -> str:
    return f"{results(config)}/{_ds(config, dataset)}/runs/{variant}/{modset}/{method}/{fusion}/s{seed}"


_ds = dataset


def student_targets(config: dict, methods=None, fusions=None, seeds=None, modset: str = ALL,
                    variant: str = MAIN, name: str = "metrics.json") -> list[str]:
    st = config["study"]
    return [f"{run_dir(config, m, f, s, modset, variant)}/{name}"
            for m in (methods or st["methods"]) for f in (fusions or st["fusions"]) for s in (seeds or st["seeds"])]


def study_teachers(config: dict) -> list[str]:
    """The study's teacher checkpoints. `rule all` lists them so that deleting one makes
    `snakemake all` retrain that teacher and rerun exactly what depends on it (Snakemake does
    not regenerate a missing intermediate file whose consumers are up to date)."""
    return [f"{teacher_dir(config, m, s)}/teacher.pt" for m in modalities(config) for s in config["study"]["seeds"]]


def study_runs(config: dict) -> list[str]:
    return student_targets(config)


def variant_overrides(config: dict, variant: str) -> list[str]:
    """``--set`` overrides of a named variant; none for ``main``.

    Variants are named in config ``tables.variants`` ({name: {dotted.key: value}}) or generated by
    the table plans (g2d.tables_plan: schedules of Table 7, the (alpha, beta) grid of Table 12,
    per-table epochs).
    """
    if variant == MAIN:
        return []
    variants = (config.get("tables") or {}).get("variants") or {}
    if variant in variants:
        over = variants[variant]
    else:
        from .tables_plan import lookup_variant
        over = lookup_variant(config, variant)
    return [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
            for k, v in over.items()]


def step_key(config: dict, step: str, **wc) -> str:
    """Hash of the config keys that determine a step: a Snakemake ``params`` so a change reruns it."""
    if step == "prepare":  # the same definition `g2d prepare` uses to decide whether to rebuild
        from .data.pipeline import prepared_hash
        blob = prepared_hash(config) + repr(sorted(wc.items()))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]
    keys = {
        "teacher": ("dataset.name", "dataset.params", "dataset.augment", "model.encoders", "train", "teacher"),
        "student": ("dataset.name", "dataset.params", "dataset.augment", "model", "train", "teacher", "g2d", "ogm",
                    "methods"),
        "report": (),
    }[step]
    blob = config_hash(config, keys, RUN_HASH_EXCLUDE) + repr(sorted(wc.items()))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


_DEFAULT_RES = {
    "cpu": {"mem_mb": 4000, "runtime": 60, "gpu": 0, "threads": 1},
    "train": {"mem_mb": 8000, "runtime": 240, "gpu": 0, "threads": 2},
}


def rule_resources(config: dict, kind: str) -> dict:
    """Resources for a rule kind (``cpu`` or ``train``): defaults overridden by config ``resources.<kind>``."""
    res = dict(_DEFAULT_RES[kind])
    res.update((config.get("resources") or {}).get(kind) or {})
    return res
