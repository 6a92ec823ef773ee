"""The front door, through the installed `quickstudy` script in a subprocess (an in-process
runner would handle usage errors itself and hide any traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from quickstudy.prompts.encoding import PRESETS
from quickstudy.shipped import DEMO_PRESETS, shipped_config, shipped_configs
from quickstudy.study.executor_kinds import EXECUTOR_KINDS

QUICKSTUDY = str(Path(sys.executable).with_name("quickstudy"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}


def quickstudy(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([QUICKSTUDY, *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=120)


USAGE_ERRORS = [
    (["study", "run", "cfg.yaml", "--outdir", "x"], "No such option: --outdir", "quickstudy study run --help"),
    (["study", "run"], "Missing argument", "quickstudy study run --help"),
    (["study", "run", "cfg.yaml", "-z"], "No such option: -z", "quickstudy study run --help"),
    (["stduy"], "No such command 'stduy'", "quickstudy --help"),
    (["study", "frob"], "No such command 'frob'", "quickstudy study --help"),
    (["--bogus"], "No such option: --bogus", "quickstudy --help"),
    (["report"], "Missing argument", "quickstudy report --help"),
    (["report", "x", "--bootstrap", "3"], "--bootstrap", "quickstudy report --help"),
    (["report", "x", "--bootstrap", "many"], "--bootstrap", "quickstudy report --help"),
    (["data", "stats"], "Missing argument", "quickstudy data stats --help"),
    (["prompts", "somewhere"], "Missing option '--task'", "quickstudy prompts --help"),
    (["demo", "--seeds", "0"], "--seeds", "quickstudy demo --help"),
    (["demo", "extra"], "unexpected extra argument", "quickstudy demo --help"),
    (["ls", "everything"], "'everything' is not one of", "quickstudy ls --help"),
    (["study", "status"], "Missing argument", "quickstudy study status --help"),
]


@pytest.mark.parametrize(("args", "message", "hint"), USAGE_ERRORS, ids=[" ".join(a) for a, _, _ in USAGE_ERRORS])
def test_usage_errors_are_one_line_with_a_hint_and_exit_2(args, message, hint):
    done = quickstudy(*args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert message in lines[0] and f"(try '{hint}')" in lines[0]


CHOICES = [
    (["study", "run", "cfg.yaml"], "--executor", "slurm", EXECUTOR_KINDS),
    (["demo"], "--preset", "huge", tuple(DEMO_PRESETS)),
]


@pytest.mark.parametrize(("command", "option", "wrong", "valid"), CHOICES, ids=[c[1] for c in CHOICES])
def test_choice_options_refuse_other_values_naming_the_option_and_the_valid_ones(
    tmp_path, command, option, wrong, valid
):
    done = quickstudy(*command, option, wrong, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    listed = ", ".join(f"'{value}'" for value in valid)
    assert line.startswith(f"error: Invalid value for '{option}'") and f"'{wrong}' is not one of {listed}" in line
    assert line.endswith(f"(try 'quickstudy {' '.join(c for c in command if c != 'cfg.yaml')} --help')")
    assert list(tmp_path.iterdir()) == []  # refused before any work
    helped = quickstudy(*[c for c in command if c != "cfg.yaml"], "--help")
    assert f"{option} <{'|'.join(valid)}>" in helped.stdout


def test_bare_command_prints_the_help():
    done = quickstudy()
    assert done.returncode == 2 and "Traceback" not in done.stderr + done.stdout
    assert "Usage: quickstudy" in done.stdout and "study" in done.stdout


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_everywhere_with_defaults(flag):
    done = quickstudy("study", "run", flag)
    assert done.returncode == 0, done.stderr
    assert "Usage: quickstudy study run" in done.stdout
    assert "[default: studies/<name>]" in done.stdout  # help markup no longer swallows it
    assert quickstudy("data", "stats", flag).stdout.count("[default:") >= 5


def test_version():
    done = quickstudy("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"quickstudy {version('quickstudy')}")


def test_ls_encodings_lists_every_preset_with_a_description():
    done = quickstudy("ls", "encodings")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert set(rows) == set(PRESETS)
    assert "definition + 2 positive examples" in rows["def_pos2"]
    assert "bare instance input" in rows["input_only"]


def test_ls_configs_and_models():
    configs = quickstudy("ls", "configs")
    assert configs.returncode == 0, configs.stderr
    assert {"thesis", "demo", "demo-smoke", "smoke"} <= set(shipped_configs())
    for name in shipped_configs():
        assert f"\n{name} " in configs.stdout
    models = quickstudy("ls", "models")
    assert "tiny-t5" in models.stdout and "tiny-llama" in models.stdout


def test_init_copies_a_shipped_config_and_refuses_to_overwrite(tmp_path):
    done = quickstudy("init", "my", "--from", "smoke", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = tmp_path / "my.yaml"
    assert written.read_text() == shipped_config("smoke").read_text()
    assert yaml.safe_load(written.read_text())["name"] == "smoke"
    assert "collection:" in done.stdout
    again = quickstudy("init", "my", "--from", "thesis", cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.strip() == "error: my.yaml: already exists (--force replaces it)"
    assert written.read_text() == shipped_config("smoke").read_text()
    assert quickstudy("init", "my", "--from", "thesis", "--force", cwd=tmp_path).returncode == 0
    assert written.read_text() == shipped_config("thesis").read_text()
    unknown = quickstudy("init", "x", "--from", "nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "no shipped config 'nope'" in unknown.stderr
    assert not (tmp_path / "x.yaml").exists()


def test_a_shipped_config_name_is_accepted_where_a_config_file_is(synth_collection, tmp_path):
    done = quickstudy("study", "plan", "smoke", "--json", "--set", f"collection={synth_collection}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert '"runs"' in done.stdout
