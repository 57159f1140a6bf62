"""Datasets: registry, acquire/prepare per dataset, the prepared-array format and loader."""

from .prepared import PreparedDataset, read_meta, write_prepared
from .registry import DatasetSpec, available_datasets, get_dataset, register

__all__ = ["PreparedDataset", "read_meta", "write_prepared", "DatasetSpec", "available_datasets", "get_dataset", "register"]
