"""Dataset registry: every dataset declares itself here so nothing downstream special-cases a name.

A dataset module (``g2d/data/<name>.py``) calls :func:`register` with a :class:`DatasetSpec`.
The pipeline only ever calls ``get_dataset(name).acquire(...)`` / ``.prepare(...)`` and reads
``modalities``, ``task``, ``classes`` and ``default_encoders``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import ConfigError

__all__ = ["DatasetSpec", "register", "get_dataset", "available_datasets"]

# Modules that define datasets; imported lazily on first registry access.
_DATASET_MODULES = [
    "g2d.data.avdigits",
    "g2d.data.avmnist_fsdd",
    "g2d.data.avmnist",
    "g2d.data.cremad",
    "g2d.data.vggsound",
    "g2d.data.urfunny",
    "g2d.data.iemocap",
    "g2d.data.misme",
    "g2d.data.tiny",
]


@dataclass
class DatasetSpec:
    """What a dataset is and how to get it.

    acquire(params, raw_dir, source, source_dir) -> None
        Put the raw files under raw_dir (download with checksum, copy from source_dir, check a
        manual placement, or nothing for generated data). Must be idempotent, verify what it
        finds, and raise DataError naming the missing/corrupt file and where to put it.
    prepare(params, raw_dir, out_dir) -> dict
        Read raw_dir, write the prepared format into out_dir (a temp dir; the caller renames it)
        via ``g2d.data.prepared.write_prepared``; return its meta.
    train_transforms(params) -> {modality: callable} | {}
        Training-time augmentation applied per sample when ``dataset.augment`` is true.
    """

    name: str
    task: str  # "classification" | "regression"
    modalities: tuple[str, ...]
    classes: tuple[str, ...] | None
    default_encoders: dict[str, dict]
    acquire: Callable
    prepare: Callable
    default_params: dict = field(default_factory=dict)
    train_transforms: Callable | None = None
    description: str = ""
    source: str = ""          # where the raw data comes from (shown in README / `g2d datasets`)
    license: str = ""
    disk: str = ""            # approximate disk needed
    manual: bool = False      # True when the raw files must be placed by the user

    def params(self, overrides: dict | None) -> dict:
        p = dict(self.default_params)
        for k, v in (overrides or {}).items():
            if k not in p:
                raise ConfigError(f"key 'dataset.params.{k}': unknown parameter for dataset '{self.name}' (known: {', '.join(sorted(p)) or 'none'})")
            p[k] = v
        return p

    @property
    def num_outputs(self) -> int:
        return len(self.classes) if self.task == "classification" else 1


_REGISTRY: dict[str, DatasetSpec] = {}
_LOADED = False


def register(spec: DatasetSpec) -> DatasetSpec:
    if spec.task not in ("classification", "regression"):
        raise ValueError(f"dataset {spec.name}: bad task {spec.task}")
    _REGISTRY[spec.name] = spec
    return spec


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for mod in _DATASET_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:  # a real missing dependency inside an existing module
                raise


def available_datasets() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get_dataset(name: str) -> DatasetSpec:
    _load_all()
    if name not in _REGISTRY:
        raise ConfigError(f"key 'dataset.name': unknown dataset '{name}' (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]
