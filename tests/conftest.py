"""Shared fixtures. Real data is read from ../shared (never copied into the project)."""

from __future__ import annotations

import sys
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


@pytest.fixture
def quickstudy(monkeypatch, capsys):
    """Run the CLI entry point (`cli.main`, as the console script does) in this
    process: `quickstudy("evaluate", path)` returns (exit code, stdout, stderr)."""
    from quickstudy.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["quickstudy", *args])
        code = 0
        try:
            main()
        except SystemExit as done:
            code = done.code or 0
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
