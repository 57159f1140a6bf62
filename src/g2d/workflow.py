"""Path and target helpers shared by the Snakemake rules and dvc.yaml generation.

The rules call these one-liners so that they hold no logic of their own: where each step's
outputs live, which runs the study needs, and the per-step hash that makes Snakemake rerun
exactly the steps whose config changed (passed as a rule ``params``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from .config import RUN_HASH_EXCLUDE, config_hash, dataset_dirs, validate_config
from .data.registry import get_dataset

__all__ = ["write_config", "results", "prepared_meta", "teacher_dir", "run_dir", "modalities", "modset_modalities",
           "study_runs", "variant_overrides", "step_key", "rule_resources", "student_targets"]

MAIN = "main"
ALL = "all"


def write_config(config: dict, workdir: str | Path = ".") -> str:
    """Validate the Snakemake config with the g2d checks and write it where every rule reads it.

    The file name carries the config's hash, so concurrent workflows never share one; it is
    rewritten only when missing (same hash = same content).
    """
    cfg = validate_config(dict(config), "snakemake config")
    h = config_hash(cfg)
    p = Path(workdir) / cfg["paths"]["results"] / ".configs" / f"{h}.yaml"
    if not p.is_file():
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
        tmp.replace(p)
    return str(p)


def results(config: dict) -> str:
    return config["paths"]["results"]


def dataset(config: dict) -> str:
    return config["dataset"]["name"]


def prepared_meta(config: dict) -> str:
    return str(dataset_dirs(config)[1] / "meta.json")


def modalities(config: dict) -> list[str]:
    return list(config["dataset"]["modalities"] or get_dataset(dataset(config)).modalities)


def modset_modalities(config: dict, modset: str) -> list[str]:
    return modalities(config) if modset == ALL else modset.split("+")


def teacher_dir(config: dict, modality: str, seed) -> str:
    return f"{results(config)}/{dataset(config)}/teachers/{modality}/s{seed}"


def run_dir(config: dict, method: str, fusion: str, seed, modset: str = ALL, variant: str = MAIN) -> str:
    return f"{results(config)}/{dataset(config)}/runs/{variant}/{modset}/{method}/{fusion}/s{seed}"


def student_targets(config: dict, methods=None, fusions=None, seeds=None, modset: str = ALL,
                    variant: str = MAIN, name: str = "metrics.json") -> list[str]:
    st = config["study"]
    return [f"{run_dir(config, m, f, s, modset, variant)}/{name}"
            for m in (methods or st["methods"]) for f in (fusions or st["fusions"]) for s in (seeds or st["seeds"])]


def study_runs(config: dict) -> list[str]:
    return student_targets(config)


def variant_overrides(config: dict, variant: str) -> list[str]:
    """``--set`` overrides of a named variant (config ``tables.variants``); none for ``main``."""
    if variant == MAIN:
        return []
    variants = (config.get("tables") or {}).get("variants") or {}
    if variant not in variants:
        from .errors import ConfigError
        raise ConfigError(f"key 'tables.variants': unknown variant '{variant}'")
    return [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
            for k, v in variants[variant].items()]


def step_key(config: dict, step: str, **wc) -> str:
    """Hash of the config keys that determine a step: a Snakemake ``params`` so a change reruns it."""
    keys = {
        "prepare": ("dataset.name", "dataset.params"),
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
