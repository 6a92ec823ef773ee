"""NLTK's Porter stemmer, imported without the rest of NLTK.

rouge-score stems with `nltk.stem.porter.PorterStemmer()`. Any `nltk.*` import first runs
NLTK's package `__init__`, which imports most of NLTK and, through it, scipy and
scikit-learn: 1.5-2.5 s, more than scoring a whole study's predictions takes. The stemmer
itself is one module (`nltk/stem/porter.py`) that needs three small ones (`nltk.redos`,
`nltk.stem.api`, `nltk.termsec`). `porter_stemmer()` imports exactly those, from the
installed NLTK, under placeholder `nltk` and `nltk.stem` packages that are taken out of
`sys.modules` again at once: the process is left as it was, and a later `import nltk`
is the full one. It is the same code, so the same stems (tests/test_evaluate_metrics.py
compares it with `nltk.stem.porter` and with rouge-score).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

_lock = threading.Lock()
_porter_class: Any = None


def porter_stemmer() -> Any:
    """A new `nltk.stem.porter.PorterStemmer()` (NLTK's default mode, as rouge-score builds it)."""
    global _porter_class
    with _lock:
        if _porter_class is None:
            _porter_class = _porter_module().PorterStemmer
    return _porter_class()


def _porter_module() -> ModuleType:
    if "nltk" in sys.modules:  # NLTK is imported already: nothing to save
        return importlib.import_module("nltk.stem.porter")
    spec = importlib.util.find_spec("nltk")
    if spec is None or not spec.submodule_search_locations:
        return importlib.import_module("nltk.stem.porter")  # the ordinary ImportError
    root = list(spec.submodule_search_locations)
    placeholders = {"nltk": root, "nltk.stem": [str(Path(root[0]) / "stem")]}
    for name, path in placeholders.items():
        package = ModuleType(name)
        package.__path__ = path
        sys.modules[name] = package
    try:
        return importlib.import_module("nltk.stem.porter")
    finally:
        for name in [name for name in sys.modules if name == "nltk" or name.startswith("nltk.")]:
            del sys.modules[name]
