"""Shared test fixtures.

Real data for tests lives in ../shared/data next to the checkout (dev and CI); tests that need
it skip with a reason when it is absent. Set G2D_SHARED_DATA to point elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("G2D_SHARED_DATA", REPO.parent / "shared" / "data"))

torch.set_num_threads(int(os.environ.get("G2D_TEST_THREADS", "2")))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED_DATA


def need_shared(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test with the reason."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real test data not present: {p} (see ../shared/data/README.md)")
    return p
