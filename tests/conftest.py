"""Shared fixtures. Real data is read from ../shared (never copied into the project)."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared"
SAMPLE = SHARED / "superni-sample"
GOLDEN = SHARED / "golden"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    if not SAMPLE.is_dir():
        pytest.fail(f"{SAMPLE} is missing: tests need ../shared beside the project")
    return SAMPLE


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return GOLDEN
