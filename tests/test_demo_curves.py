"""The finished demo's curves: no proposed arm scores lower at a size than at the one before it
beyond the 95% interval of the paired difference (the demo's step budget must not read as "more
data hurts"). The full demo takes minutes, so this reads a finished one: after `make demo`, run
`QUICKSTUDY_DEMO_DIR=demo-study pytest tests/test_demo_curves.py`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

DEMO_DIR = os.environ.get("QUICKSTUDY_DEMO_DIR")


@pytest.mark.skipif(not DEMO_DIR, reason="QUICKSTUDY_DEMO_DIR (a finished `quickstudy demo --out` folder) not set")
def test_no_proposed_curve_of_the_demo_drops_beyond_its_interval():
    summary = json.loads((Path(DEMO_DIR) / "report" / "summary.json").read_text())
    reading = summary["thesis_reading"]
    assert {"stl", "mtl"} <= set(reading), "the demo's report has no STL or MTL proposed arm"
    drops = {setting: reading[setting]["drops"] for setting in ("stl", "mtl")}
    assert drops == {"stl": [], "mtl": []}
    for setting in ("stl", "mtl"):  # every size of the curve was evaluated
        assert [p["size"] for p in reading[setting]["sizes"]] == ["8", "32", "128", "all"]
