"""One-line errors on every write path (issue 17): a read-only folder, a full disk, odd
characters from data. Real mechanisms: each command runs in its own mount namespace
(`unshare`) with the output folder a fresh tmpfs, read-only or a few kB in size."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from studies import thesis_like_study, write_synthetic_study

QUICKSTUDY = str(Path(sys.executable).with_name("quickstudy"))
MOUNT = 'mount -t tmpfs -o size=$1 tmpfs $0 && { [ "$2" = rw ] || mount -o remount,ro $0; } && shift 3 && exec "$@"'


def can_mount() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = [
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        "mount -t tmpfs tmpfs /mnt || mount -t tmpfs tmpfs /tmp",
    ]
    return subprocess.run(probe, capture_output=True).returncode == 0


needs_mounts = pytest.mark.skipif(not can_mount(), reason="needs `unshare` with user and mount namespaces")


def run_on_mount(folder: Path, size: str, mode: str, *args: str) -> subprocess.CompletedProcess:
    """`quickstudy ARGS` with `folder` a fresh tmpfs of `size`, read-only (`ro`) or writable (`rw`)."""
    folder.mkdir(parents=True, exist_ok=True)
    command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", MOUNT, str(folder), size, mode, "x"]
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run([*command, QUICKSTUDY, *args], capture_output=True, text=True, env=env, timeout=300)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return write_synthetic_study(tmp_path_factory.mktemp("study") / "study", thesis_like_study())


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("collection") / "c"
    subprocess.run([QUICKSTUDY, "data", "synth", str(out)], check=True, capture_output=True)
    return out


@needs_mounts
def test_every_write_path_on_a_read_only_folder_is_one_line(tmp_path: Path, study: Path, collection: Path) -> None:
    ro = tmp_path / "ro"
    predictions = next((study / "runs").glob("*/predictions.jsonl"))
    commands = {
        "data synth": (["data", "synth", str(ro / "c")], ro),
        "stats --manifest": (["data", "stats", str(collection), "--manifest", str(ro / "m.json"), "--json"], ro / "m.json"),
        "evaluate --out": (["evaluate", str(predictions), "--out", str(ro / "e.json")], ro / "e.json"),
        "report": (["report", str(study), "--out", str(ro / "r")], ro / "r"),
        "study run": (["study", "run", str(Path(__file__).parents[1] / "configs/smoke.yaml"),
                       "--set", f"collection={collection}", "--out", str(ro / "s")], ro / "s"),
        "demo": (["demo", "--preset", "smoke", "--out", str(ro / "d")], ro / "d"),
    }  # fmt: skip
    for name, (args, target) in commands.items():
        line = one_line_error(run_on_mount(ro, "64k", "ro", *args))
        assert "Read-only file system" in line and str(target.parent) in line, (name, line)


@needs_mounts
def test_a_full_disk_under_report_and_study_run_is_one_line(tmp_path: Path, study: Path, collection: Path) -> None:
    full = tmp_path / "full"
    line = one_line_error(run_on_mount(full, "100k", "rw", "report", str(study), "--out", str(full / "r")))
    assert line == f"error: {full / 'r'}: cannot write (No space left on device)"
    smoke = Path(__file__).parents[1] / "configs/smoke.yaml"
    result = run_on_mount(full, "200k", "rw", "study", "run", str(smoke), "--set", f"collection={collection}",
                          "--set", "tasks.unseen.names=[task066_coref_referent]", "--out", str(full / "s"))  # fmt: skip
    one_line_error(result)  # runs that hit the full disk are recorded failed, or status.json cannot be written
    assert "No space left on device" in result.stderr


def test_markup_html_and_math_text_from_data_are_printed_as_text(tmp_path: Path, study: Path) -> None:
    """A category named `[/]`, `<script>` or `$a$b$` is shown as written: no rich markup error,
    no matplotlib math-text parse error, no raw HTML in report.md."""
    odd = ["[/] $x$ and $y$ <script>alert(1)</script>"]
    copy = tmp_path / "study"
    shutil.copytree(study, copy)
    for path in (copy / "runs").glob("*/predictions.jsonl"):
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({**line, "Categories": odd}) + "\n" for line in lines))
    env = {**os.environ, "COLUMNS": "250"}
    evaluate = subprocess.run([QUICKSTUDY, "evaluate", str(path)], capture_output=True, text=True, env=env)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    assert "[/] $x$ and $y$ <script>" in evaluate.stdout
    report = subprocess.run([QUICKSTUDY, "report", str(copy), "--bootstrap", "50"], capture_output=True, text=True)
    assert report.returncode == 0, report.stderr[-3000:]
    markdown = (copy / "report" / "report.md").read_text()
    assert "<script>" not in markdown and "&lt;script&gt;" in markdown
    assert "<script>alert" not in (copy / "report" / "report.html").read_text()


def test_study_status_prints_errors_with_markup_as_text(tmp_path: Path, study: Path) -> None:
    copy = tmp_path / "study"
    shutil.copytree(study, copy)
    plan = {"runs": [{"id": run.name, "kind": "evaluate", "arm": "[bold]arm[/]"} for run in (copy / "runs").iterdir()]}
    (copy / "plan.json").write_text(json.dumps(plan))
    status = next((copy / "runs").glob("*/status.json"))
    status.write_text(json.dumps({"state": "failed", "error": "odd [/] error [/bold]"}))
    result = subprocess.run([QUICKSTUDY, "study", "status", str(copy)], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "250"})  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "odd [/] error [/bold]" in result.stdout and "[bold]arm[/]" in result.stdout


@pytest.mark.parametrize("payload", ["9" * 5000, "[" * 100_000 + "]" * 100_000])
def test_a_huge_number_or_deep_nesting_in_a_prediction_line_is_one_line(tmp_path: Path, payload: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"Task": "t", "prediction": "a", "Instance": {"id": "1", "output": ["a"]}, "x": ' + payload + "}\n"
    )
    result = subprocess.run([QUICKSTUDY, "evaluate", str(path)], capture_output=True, text=True)
    assert one_line_error(result).startswith(f"error: {path}:1: not valid JSON")


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_temp_folders_of_killed_writers_are_cleaned_at_the_next_start(tmp_path: Path, study: Path) -> None:
    from quickstudy.models.loading import BaseModelCache, load_model, save_model
    from quickstudy.models.spec import ModelSpec
    from quickstudy.report.render import build_report

    out = tmp_path / "report"
    stale, live = out / f".report-{dead_pid()}-abc", out / f".report-{os.getpid()}-abc"
    for folder in (stale, live):
        (folder / "figures").mkdir(parents=True)
    build_report(study, out, n_boot=50)
    assert not stale.exists() and live.exists()  # a live writer's folder is its own to finish
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [live.name]

    stale_model = tmp_path / f".model.tmp-{dead_pid()}"
    stale_model.mkdir()
    loaded = load_model(ModelSpec(name_or_path="tiny-t5"), cache=BaseModelCache(max_entries=0))
    save_model(loaded, tmp_path / "model")
    assert not stale_model.exists() and (tmp_path / "model" / "model.safetensors").is_file()


def test_a_nan_score_reaches_summary_json_as_null_with_a_warning(tmp_path: Path, study: Path) -> None:
    copy = tmp_path / "study"
    shutil.copytree(study, copy)
    path = next((copy / "runs").glob("*/predictions.jsonl"))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    lines[0]["scores"] = {"exact_match": float("nan"), "rouge1": float("nan"), "rougeL": float("nan")}
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))  # json.dumps writes NaN
    result = subprocess.run([QUICKSTUDY, "report", str(copy), "--bootstrap", "50"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    text = (copy / "report" / "summary.json").read_text()

    def refuse(token: str) -> None:
        raise AssertionError(f"summary.json holds {token}")

    json.loads(text, parse_constant=refuse)
    assert "non-finite number(s) written as null" in result.stderr
