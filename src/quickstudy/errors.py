"""Typed errors raised where a problem is found.

Every message names the file, task or field at fault. The CLI turns any
QuickstudyError into one line on stderr and a non-zero exit (see cli.py);
nothing else should catch and print them.
"""


class QuickstudyError(Exception):
    """Base class: a user-facing problem with input, config or state."""

    exit_code = 2


class DataError(QuickstudyError):
    """A task file, split file or manifest is missing or malformed."""


class PromptError(QuickstudyError):
    """An encoding name or option is invalid."""


class ConfigError(QuickstudyError):
    """A study, training or model config is invalid."""


class PredictionsError(QuickstudyError):
    """A predictions file is malformed."""


class ModelError(QuickstudyError):
    """A model or tokenizer cannot be built or loaded."""


class StudyError(QuickstudyError):
    """A study directory is locked, inconsistent or has failed runs."""

    exit_code = 1


class Interrupted(QuickstudyError):
    """Ctrl-C during a command whose finished work is kept (the message says where)."""

    exit_code = 130


class OutputError(QuickstudyError):
    """A result cannot be written: a read-only folder, a full disk, a path that is a folder."""

    exit_code = 1


def first_line(error: BaseException, with_type: bool = False) -> str:
    """The first line of an error's message (a library's reason, for a one-line error), else its type name;
    `with_type`: prefixed by its type name (where the message alone would not say what failed)."""
    text = str(error).strip()
    if not text:
        return type(error).__name__
    line = text.splitlines()[0]
    return f"{type(error).__name__}: {line}" if with_type else line


def one_line_error(error: BaseException) -> str:
    """An error's whole message on one line (a run's status.json keeps it), prefixed by its type
    unless it is one of ours (ours already say where and what)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, QuickstudyError) else f"{type(error).__name__}: {text}"


def output_error(error: OSError, path: object = None) -> OutputError:
    """An OSError met while writing `path` (else the file the error names), as one line."""
    where = path if path is not None else error.filename
    reason = error.strerror or type(error).__name__
    return OutputError(f"{where}: cannot write ({reason})" if where is not None else f"cannot write ({reason})")
