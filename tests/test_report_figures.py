"""The report's figures, drawn from synthetic studies (tests/studies.py) and measured in the renderer."""

from __future__ import annotations

import json
import math
from itertools import combinations
from pathlib import Path

import pytest

from quickstudy.report.analysis import analyse
from quickstudy.report.figures import instruction_effect_plot, sample_efficiency_plot
from quickstudy.report.results import collect_study
from quickstudy.study.layout import RUNS_DIR, SPEC_FILE
from studies import THESIS_TASKS, SyntheticArm, thesis_like_study, write_synthetic_study

# A second STL arm with instructions that reaches the SOTA (70.99) a few per cent of data after the first
CLOSE_ARM = SyntheticArm("proposed_def", "stl", "instruction_tuned", "def", {"100": 65.5, "200": 68.0, "1000": 71.8})


@pytest.fixture(scope="module")
def two_crossovers(tmp_path_factory):
    study = thesis_like_study()
    study.arms.append(CLOSE_ARM)
    root = write_synthetic_study(tmp_path_factory.mktemp("close"), study)
    return analyse(collect_study(root), n_boot=50)


def test_crossover_labels_close_together_do_not_overlap(two_crossovers):
    stl = [c for c in two_crossovers.crossovers if c.setting == "stl" and c.status == "reached"]
    assert len(stl) == 2 and abs(math.log(stl[0].x / stl[1].x)) < 0.05  # within 5% of each other
    fig = sample_efficiency_plot(two_crossovers)
    renderer = fig.canvas.get_renderer()
    assert len(fig.axes) == 2
    for ax, expected in zip(fig.axes, (2, 1)):  # STL: both arms cross; MTL: the one proposed arm
        labels = [text for text in ax.texts if "matches SOTA at" in text.get_text()]
        boxes = [label.get_window_extent(renderer) for label in labels]
        assert len(boxes) == expected, ax.get_title()
        for a, b in combinations(boxes, 2):
            assert not a.overlaps(b), (a, b)
        for box in boxes:  # inside the panel
            assert ax.bbox.x0 <= box.x0 and box.x1 <= ax.bbox.x1 and ax.bbox.y0 <= box.y0 <= box.y1 <= ax.bbox.y1


def test_help_and_hurt_panels_share_one_x_scale(two_crossovers):
    fig = instruction_effect_plot(two_crossovers)
    assert len(fig.axes) == 2
    stl, mtl = fig.axes
    assert stl.get_xlim() == mtl.get_xlim()
    widest = max(abs(e.estimate.high) for e in two_crossovers.category_effects)
    assert stl.get_xlim()[1] >= widest  # both panels show every interval


def _leave_runs_pending(root: Path, setting: str, task: str) -> None:
    """Turn the written runs of `task` in `setting` back into planned, not yet run ones (their spec alone)."""
    for spec in (root / RUNS_DIR).glob(f"*/{SPEC_FILE}"):
        fields = json.loads(spec.read_text())
        if (fields.get("setting"), fields.get("task")) == (setting, task):
            for written in spec.parent.iterdir():
                if written.name != SPEC_FILE:
                    written.unlink()


def test_help_and_hurt_bars_sit_on_their_own_category_when_panels_differ(tmp_path):
    pending = THESIS_TASKS[1]  # STL runs of its one task pending: the STL panel has no bar for its category
    root = write_synthetic_study(tmp_path, thesis_like_study())
    _leave_runs_pending(root, "stl", pending.name)
    analysis = analyse(collect_study(root), n_boot=50)
    effects = {(e.setting, e.category): e.estimate.value for e in analysis.category_effects}
    assert (pending.category not in {c for s, c in effects if s == "stl"}) and ("mtl", pending.category) in effects
    fig = instruction_effect_plot(analysis)
    for ax, setting in zip(fig.axes, ("stl", "mtl")):
        assert ax.get_title().startswith(setting.upper())
        ticks = ax.get_yticks()
        label_at = dict(zip(ticks, ax.yaxis.get_major_formatter().format_ticks(ticks)))  # shared: hidden on MTL
        bars = {label_at[bar.get_y() + bar.get_height() / 2]: bar.get_width() for bar in ax.patches}
        assert bars == pytest.approx({c: value for (s, c), value in effects.items() if s == setting}), setting
