"""Reading a YAML config, the same way for study configs and `quickstudy train` configs.

`load_config(path, overrides, model, paths=...)` reads the YAML mapping, resolves the
paths written in it against the file's folder (so a config works from any working
directory), applies `--set dotted.key=value` overrides (values parsed as YAML; list items
by index or by their `name`; a path given on the command line is relative to the working
directory), then validates with the pydantic `model`. Any problem is one ConfigError
naming the file and the dotted key, e.g. `cfg.yaml: training: unknown key 'trian'; valid
keys: ...`.
"""

from __future__ import annotations

import logging
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from quickstudy.errors import ConfigError

Model = TypeVar("Model", bound=BaseModel)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PathKeys:
    """Which keys hold paths. `plain`: always a path; `explicit`: a path only when written
    as "./..." or "../..." (a model's `name_or_path` may be a hub id like "org/name").
    A `*` part matches every key of a mapping (`models.*.tokenizer`)."""

    plain: tuple[str, ...] = ()
    explicit: tuple[str, ...] = ()


def load_config(
    path: str | Path,
    overrides: Sequence[str],
    model: type[Model],
    paths: PathKeys = PathKeys(),
    renamed: dict[str, str] | None = None,
) -> Model:
    """The validated config in `path` with `--set` overrides applied. `renamed` maps a
    deprecated top-level key to its name (accepted with a warning line)."""
    path = Path(path)
    raw = read_yaml_mapping(path)
    resolve_paths(raw, paths, path.parent)
    for override in overrides:
        key, value = parse_override(override)
        set_dotted(raw, key, resolved_override(key, value, paths))
    for old, new in (renamed or {}).items():
        if old in raw:
            log.warning("%s: the key '%s:' is deprecated; write '%s:'", path, old, new)
            moved = raw.pop(old)
            raw[new] = {**raw[new], **moved} if isinstance(raw.get(new), dict) and isinstance(moved, dict) else moved
    return validated(model, raw, str(path))


def validated(model: type[Model], raw: Any, where: str) -> Model:
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{where}: {validation_message(error, model)}") from None


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The YAML mapping in `path`; a one-line ConfigError for a missing, unreadable or non-mapping file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{line} invalid YAML ({getattr(error, 'problem', error)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping")
    return raw


def validation_message(error: ValidationError, model: type[BaseModel] | None = None) -> str:
    """`dotted.key: message` for the first problem, with a count of the rest; an unknown
    key names the valid ones when `model` (the validated class) is given."""
    problems = error.errors()
    first = problems[0]
    key = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = f"unknown key {first['loc'][-1]!r}" if first["loc"] else "unknown key"
        valid = _field_names(_model_at(model, first["loc"][:-1])) if model is not None else None
        if valid:
            message += f"; valid keys: {', '.join(valid)}"
    text = f"{key}: {message}" if key else message
    if len(problems) > 1:
        text += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
    return text


def _model_at(model: Any, loc: Sequence[str | int]) -> Any:
    """The pydantic class a location inside `model` is validated by (None when unknown)."""
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        model = _inner_model(model.model_fields[part].annotation)
    return model


def _inner_model(annotation: Any) -> Any:
    """The one BaseModel in an annotation such as `X`, `X | None`, `list[X]` or `dict[str, X]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, tuple, dict):
        found = [m for m in map(_inner_model, typing.get_args(annotation)) if m is not None]
        return found[0] if len(found) == 1 else None
    return None


def _field_names(model: Any) -> list[str]:
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


def parse_override(text: str) -> tuple[str, Any]:
    """`dotted.key=value` as (key, value); the value is parsed as a YAML scalar or flow list."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: expected dotted.key=value")
    if not value.strip():  # `--set collection=` would mean the current folder
        raise ConfigError(f"--set {text!r}: no value after '='")
    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError:
        raise ConfigError(f"--set {text!r}: value is not valid YAML") from None


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set `raw[a][b][c] = value` for key `a.b.c`; list items by index or by their `name`."""
    parts = key.split(".")
    node: Any = raw
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            index = _list_index(node, part, where)
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if not isinstance(node.get(part), (dict, list)):
                    node[part] = {}
                node = node[part]
        else:
            raise ConfigError(f"--set {key}: {'.'.join(parts[:depth])} is not a mapping or list")


def _list_index(items: list[Any], part: str, where: str) -> int:
    if part.isdigit() and int(part) < len(items):
        return int(part)
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == part:
            return index
    raise ConfigError(f"--set {where}: no list item with index or name {part!r}")


def resolve_paths(raw: dict[str, Any], paths: PathKeys, base: Path) -> None:
    """Make the paths written in a config file absolute, relative to the file's folder."""
    for pattern, explicit in [*((p, False) for p in paths.plain), *((p, True) for p in paths.explicit)]:
        for parent, leaf in _matches(raw, pattern.split(".")):
            value = parent.get(leaf)
            if isinstance(value, str) and (not explicit or value.startswith(("./", "../"))):
                parent[leaf] = str((base / value).resolve())


def resolved_override(key: str, value: Any, paths: PathKeys) -> Any:
    """A `--set` value; one for a path key made absolute, relative to the working directory."""
    if not isinstance(value, str):
        return value
    parts = key.split(".")
    if any(_pattern_matches(p, parts) for p in paths.plain) or (
        value.startswith(("./", "../")) and any(_pattern_matches(p, parts) for p in paths.explicit)
    ):
        return str(Path(value).resolve())
    return value


def _pattern_matches(pattern: str, parts: list[str]) -> bool:
    wanted = pattern.split(".")
    return len(wanted) == len(parts) and all(w in ("*", p) for w, p in zip(wanted, parts))


def _matches(node: Any, pattern: list[str]) -> Iterable[tuple[dict[str, Any], str]]:
    """(mapping, key) pairs a dotted pattern reaches in `node`."""
    if not isinstance(node, dict):
        return
    head, *rest = pattern
    keys = list(node) if head == "*" else [head] if head in node else []
    for key in keys:
        if rest:
            yield from _matches(node[key], rest)
        else:
            yield node, key
