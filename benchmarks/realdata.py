"""Where the benchmarks find the real SuperNI sample: the QUICKSTUDY_SUPERNI_SAMPLE setting, as in the
tests (default: a `shared/superni-sample` folder beside the checkout, when there is one)."""

from __future__ import annotations

import os
from pathlib import Path

SAMPLE = Path(
    os.environ.get("QUICKSTUDY_SUPERNI_SAMPLE") or Path(__file__).resolve().parents[2] / "shared" / "superni-sample"
)
