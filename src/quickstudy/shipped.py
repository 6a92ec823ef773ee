"""The configs that ship with quickstudy (package data), found by name.

`configs/` at the repository root is the one copy; the package's `configs` folder
links to it, so a checkout and a `pip install .` find the same files.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from quickstudy.errors import ConfigError

_SUFFIXES = (".yaml", ".json")
DEMO_PRESETS = {"demo": "demo.yaml", "smoke": "demo-smoke.yaml"}  # `quickstudy demo --preset` -> its shipped config


def shipped_config_dir() -> Path:
    return Path(str(files("quickstudy") / "configs")).resolve()


def shipped_configs() -> dict[str, Path]:
    """Name (file stem) -> path of every shipped config, sorted by name."""
    folder = shipped_config_dir()
    paths = sorted(path for path in folder.iterdir() if path.suffix in _SUFFIXES) if folder.is_dir() else []
    return {path.stem: path for path in paths}


def shipped_config(name: str) -> Path:
    """The shipped config called `name` (with or without its suffix); ConfigError listing the names."""
    configs = shipped_configs()
    path = configs.get(Path(name).stem if Path(name).suffix in _SUFFIXES else name)
    if path is None:
        raise ConfigError(f"no shipped config {name!r} (shipped: {', '.join(configs)})")
    return path


def config_summary(path: Path, width: int = 100) -> str:
    """The first sentence of a config's leading comment: what it is for."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.lstrip("#").strip()
        if not line.startswith("#") or not text:
            break
        lines.append(text)
    sentence = " ".join(lines).split(". ")[0].rstrip(".")
    return sentence if len(sentence) <= width else sentence[: width - 3].rstrip() + "..."


def config_file(argument: Path) -> Path:
    """A config argument as a file: the path itself, or the shipped config of that name when no
    such file exists and the argument is a bare name (`quickstudy study plan thesis`)."""
    if argument.exists() or len(argument.parts) != 1 or argument.stem not in shipped_configs():
        return argument
    return shipped_config(argument.name)
