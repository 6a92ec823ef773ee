"""Typed records for the SuperNI task format.

A task file is JSON with `Definition`, `Positive Examples`, `Negative Examples`,
`Categories`, `Instances` and metadata. These records are the text-level view
of a task; token ids live in the prompts stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Example:
    """A positive or negative demonstration shown in an instruction prompt."""

    input: str
    output: str
    explanation: str | None = None  # None: the file has no explanation key (not the same as "")


@dataclass(frozen=True, slots=True)
class Instance:
    """One labelled instance; `references` holds every acceptable output."""

    id: str
    input: str
    references: tuple[str, ...]


@dataclass
class Task:
    """A SuperNI task. `definition` is the first entry when the file holds a list."""

    name: str
    definition: str
    positive_examples: list[Example] = field(default_factory=list)
    negative_examples: list[Example] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    input_languages: list[str] = field(default_factory=list)
    output_languages: list[str] = field(default_factory=list)
    instruction_languages: list[str] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    instances: list[Instance] = field(default_factory=list)

    @property
    def category(self) -> str:
        """The task's category: its first `Categories` entry, or "unknown"."""
        return self.categories[0] if self.categories else "unknown"
