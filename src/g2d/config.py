"""The one validated study config.

A config is a YAML file validated against ``workflow/schemas/config.schema.yaml`` (the same file
Snakemake's ``validate()`` uses; the package ships it as ``g2d/schemas/config.schema.yaml``).
Defaults declared in the schema are filled in. Overrides are ``dotted.key=value`` strings whose
value is parsed as YAML (``train.epochs=3``, ``study.seeds=[0,1]``).

Every problem raises :class:`g2d.errors.ConfigError` with a one-line message naming the file
and the key.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import yaml
from jsonschema import Draft202012Validator, validators

from .errors import ConfigError

RUN_HASH_EXCLUDE = ("train.epochs", "train.patience", "train.threads", "dataset.num_workers", "teacher.epochs")

__all__ = ["RUN_HASH_EXCLUDE", "load_config", "validate_config", "apply_overrides", "config_hash", "schema", "dataset_dirs"]


def schema() -> dict:
    return copy.deepcopy(_schema())


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    """The parsed schema, read once per process (validation runs for every Snakemake job)."""
    text = resources.files("g2d").joinpath("schemas/config.schema.yaml").read_text()
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _extend_with_default(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema_):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema_)

    return validators.extend(validator_class, {"properties": set_defaults})


_DefaultFillingValidator = _extend_with_default(Draft202012Validator)


def _check_finite(obj: Any, path: str, source: str) -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ConfigError(f"{source}: key '{path}' must be a finite number, got {obj}")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_finite(v, f"{path}.{k}" if path else str(k), source)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _check_finite(v, f"{path}[{i}]", source)


def validate_config(cfg: dict, source: str = "<config>") -> dict:
    """Validate ``cfg`` in place (filling defaults) and return it. One-line ConfigError on failure."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{source}: the config must be a mapping, got {type(cfg).__name__}")
    _check_finite(cfg, "", source)
    validator = _DefaultFillingValidator(_schema())
    errors = sorted(validator.iter_errors(cfg), key=lambda e: (len(e.path), list(map(str, e.path))))
    if errors:
        err = errors[0]
        key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
        msg = err.message
        if err.validator == "additionalProperties":
            key = key if key != "<top level>" else ""
            extra = msg.split("(")[-1].split(" were")[0].split(" was")[0]
            msg = f"unknown key {extra}"
            key = f"{key}.{extra.strip(chr(39))}" if key else extra.strip("'")
        raise ConfigError(f"{source}: key '{key}': {msg}")
    _semantic_checks(cfg, source)
    return cfg


def _semantic_checks(cfg: dict, source: str) -> None:
    # Names that live in registries are checked here so the error names the key.
    from .methods import available_methods
    from .models.fusion import available_fusions
    from .data.registry import available_datasets

    ds = cfg["dataset"]["name"]
    if ds not in available_datasets():
        raise ConfigError(f"{source}: key 'dataset.name': unknown dataset '{ds}' (known: {', '.join(available_datasets())})")
    for key, names, known in (
        ("study.methods", cfg["study"]["methods"], available_methods()),
        ("study.fusions", cfg["study"]["fusions"], available_fusions()),
        ("model.fusion", [cfg["model"]["fusion"]], available_fusions()),
    ):
        for n in names:
            if n not in known:
                raise ConfigError(f"{source}: key '{key}': unknown name '{n}' (known: {', '.join(known)})")
    sched = cfg["g2d"]["schedule"]
    if sched is not None and len(sched) < 2:
        raise ConfigError(f"{source}: key 'g2d.schedule': needs one entry per modality (M >= 2), got {sched}")


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override '{item}': expected dotted.key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"override '{item}': empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{item}': value is not valid YAML ({exc.problem})") from None
    return key.split("."), value


def apply_overrides(cfg: dict, overrides: Iterable[str] | None) -> dict:
    cfg = copy.deepcopy(cfg)
    for item in overrides or []:
        parts, value = _parse_override(item)
        node = cfg
        for p in parts[:-1]:
            if p not in node or node[p] is None:
                node[p] = {}
            if not isinstance(node[p], dict):
                raise ConfigError(f"override '{item}': key '{p}' is not a mapping")
            node = node[p]
        node[parts[-1]] = value
    return cfg


def load_config(path: str | Path | None = None, overrides: Iterable[str] | None = None,
                data: dict | None = None) -> dict:
    """Load YAML ``path`` (or use ``data``), apply overrides, validate, fill defaults."""
    source = str(path) if path is not None else "<config>"
    if data is None:
        if path is None:
            raw: Any = {}
        else:
            p = Path(path)
            if not p.is_file():
                raise ConfigError(f"{source}: config file not found")
            try:
                raw = yaml.safe_load(p.read_text()) or {}
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f" (line {mark.line + 1})" if mark is not None else ""
                raise ConfigError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    else:
        raw = copy.deepcopy(data)
    cfg = apply_overrides(raw, overrides)
    return validate_config(cfg, source)


def config_hash(cfg: dict, keys: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> str:
    """Short stable hash of the config (or of the listed top-level/dotted keys), minus ``exclude``.

    Run hashes exclude keys that may change without invalidating a checkpoint: ``train.epochs``
    (extending a run resumes it), ``train.patience``, ``train.threads``, ``dataset.num_workers``.
    """
    if exclude:
        cfg = copy.deepcopy(cfg)
        for k in exclude:
            parts = k.split(".")
            node = cfg
            for p in parts[:-1]:
                node = node.get(p) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.pop(parts[-1], None)
    if keys is not None:
        sub = {}
        for k in keys:
            node: Any = cfg
            for p in k.split("."):
                node = node.get(p) if isinstance(node, dict) else None
            sub[k] = node
        cfg = sub
    blob = json.dumps(cfg, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def dataset_dirs(cfg: dict) -> tuple[Path, Path]:
    """(raw_dir, prepared_dir) for the config's dataset, with the documented defaults."""
    d = cfg["dataset"]
    name = d["name"]
    raw = Path(d["raw_dir"]) if d.get("raw_dir") else Path("data/raw") / name
    prep = Path(d["prepared_dir"]) if d.get("prepared_dir") else Path("data/prepared") / name
    return raw, prep
