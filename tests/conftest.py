"""Shared fixtures.

Real-data checks compare quickstudy with SuperNI's reference code on real task files. They
read two folders that are never copied into the project, each found through one setting:

    QUICKSTUDY_SUPERNI_SAMPLE  a sample of the SuperNI collection (default: ../shared/superni-sample)
    QUICKSTUDY_GOLDEN          the reference code's outputs on it (default: ../shared/golden)

(defaults relative to the project folder, used when they exist). Tests that read them are
marked `superni` and skip, with one reason line naming the setting, when a folder is absent;
QUICKSTUDY_REQUIRE_SAMPLE=1 (set by .ci/run; on a CI machine, CI=true, it is the default)
turns those skips into failures, and the run ends with a line counting them. Every other
test runs on data it makes itself (the synthetic collection, tiny models).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[1]
SUPERNI = "superni"  # the marker of every test that reads the real-data folders
REQUIRE_SETTING = "QUICKSTUDY_REQUIRE_SAMPLE"


@dataclass(frozen=True)
class RealData:
    """One real-data folder: the setting that names it and its default beside the project."""

    setting: str
    default: Path

    def folder(self) -> Path | None:
        """The folder the setting names (or the default), None when it is not there."""
        value = os.environ.get(self.setting)
        folder = Path(value).expanduser().resolve() if value else self.default
        return folder if folder.is_dir() else None

    def missing(self) -> str:
        value = os.environ.get(self.setting)
        return f"{self.setting}={value} is not a folder" if value else f"{self.setting} is not set"


SAMPLE = RealData("QUICKSTUDY_SUPERNI_SAMPLE", PROJECT.parent / "shared" / "superni-sample")
GOLDEN = RealData("QUICKSTUDY_GOLDEN", PROJECT.parent / "shared" / "golden")
REAL_DATA_FIXTURES = ("sample_dir", "golden_dir")


def real_data_requirement() -> str | None:
    """What makes absent real data a failure: QUICKSTUDY_REQUIRE_SAMPLE=1, or CI=true with it unset."""
    value = os.environ.get(REQUIRE_SETTING)
    if value is not None:
        return f"{REQUIRE_SETTING}=1" if value == "1" else None
    return "CI=true" if os.environ.get("CI") == "true" else None


def real_data_folder(data: RealData) -> Path:
    """The folder, else skip the test naming the setting (fail it when real data is required)."""
    folder = data.folder()
    if folder is not None:
        return folder
    requirement = real_data_requirement()
    if requirement:
        pytest.fail(f"{data.missing()}, and {requirement} requires the real-data checks", pytrace=False)
    pytest.skip(f"{data.missing()}: real-data check skipped (see the README's Real-data checks)")


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return real_data_folder(SAMPLE)


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return real_data_folder(GOLDEN)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that reads a real-data folder must carry the `superni` marker (so `-m` selects it)."""
    unmarked = [
        item.nodeid
        for item in items
        if set(REAL_DATA_FIXTURES) & set(getattr(item, "fixturenames", ())) and item.get_closest_marker(SUPERNI) is None
    ]
    if unmarked:
        raise pytest.UsageError(f"reads real data but lacks @pytest.mark.{SUPERNI}: {', '.join(unmarked)}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter):
    """A closing line, after pytest's own summary: how many real-data tests ran, were skipped
    (and which setting is missing) or could not start."""
    yield
    reports = [
        report
        for outcome in ("passed", "failed", "error", "skipped")
        for report in terminalreporter.stats.get(outcome, [])
        if SUPERNI in getattr(report, "keywords", {})
    ]
    if not reports:
        return
    ran = {report.nodeid for report in reports if report.when == "call"}
    skipped = {report.nodeid for report in reports if report.skipped} - ran
    not_started = {report.nodeid for report in reports if report.when == "setup" and report.failed}
    line = f"real-data tests ({SUPERNI}): {len(ran)} ran, {len(skipped)} skipped"
    line += f", {len(not_started)} failed at setup" if not_started else ""
    missing = [data.missing() for data in (SAMPLE, GOLDEN) if data.folder() is None]
    terminalreporter.write_line(line + (f" ({'; '.join(missing)})" if missing else ""))


@pytest.fixture(scope="session")
def synth_collection(tmp_path_factory) -> Path:
    """The synthetic collection (`quickstudy data synth`, seed 0), written once per session."""
    from quickstudy.data.synth import write_synth_collection

    folder = tmp_path_factory.mktemp("synth") / "collection"
    write_synth_collection(folder, seed=0)
    return folder


@pytest.fixture(scope="session")
def smoke_config(synth_collection: Path, tmp_path_factory) -> Path:
    """configs/smoke.yaml with its collection pointed at the session's synthetic collection."""
    raw = yaml.safe_load((PROJECT / "configs" / "smoke.yaml").read_text())
    raw["collection"] = str(synth_collection)
    path = tmp_path_factory.mktemp("smoke") / "smoke.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


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


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread in the tests of a module that asks for it (`pytest.mark.usefixtures`) and and in subprocesses: on a shared 2-core machine, torch's
    spinning thread pool is several times slower than one thread (and Ray's workers use one)."""
    import torch

    threads, env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    yield
    torch.set_num_threads(threads)
    if env is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = env
