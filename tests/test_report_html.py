"""report.html in a real browser: every figure loads and the per-task table sorts.

Needs Debian's `chromium`; the set-up installs it when missing and skips (saying why)
only when it cannot be installed.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import pytest

from quickstudy.report import build_report
from studies import thesis_like_study, write_synthetic_study

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Runs after the page (and its inline images) loaded: records each image's natural width,
# clicks the "instruction gain" header of the per-task sortable table (other tables sort too) and records the column.
CHECK_SCRIPT = """
<script>
window.addEventListener('load', function () {
  var images = Array.from(document.images).map(function (i) { return {alt: i.alt, width: i.naturalWidth}; });
  var headersOf = function (t) { return Array.from(t.tHead.rows[0].cells).map(function (c) { return c.textContent; }); };
  var table = Array.from(document.querySelectorAll('table.sortable')).find(function (t) {
    return headersOf(t).indexOf('instruction gain') >= 0;
  });
  var column = headersOf(table).indexOf('instruction gain');
  table.tHead.rows[0].cells[column].click();
  var sorted = Array.from(table.tBodies[0].rows).map(function (r) { return r.cells[column].textContent; });
  var out = document.createElement('pre');
  out.id = 'qs-check';
  out.textContent = JSON.stringify({images: images, sorted: sorted});
  document.body.appendChild(out);
});
</script>
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium")
    if found is None and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, timeout=900)
        found = shutil.which("chromium")
    if found is None:
        pytest.skip(
            "chromium is not installed and `apt-get install -y chromium` failed (needs root and the Debian archive)"
        )
    return found


def test_every_figure_loads_and_the_task_table_sorts(chromium, tmp_path):
    root = write_synthetic_study(tmp_path / "study", thesis_like_study())
    files = build_report(root, n_boot=200)
    page = tmp_path / "checked.html"
    page.write_text(files.html.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    done = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    found = re.search(r'<pre id="qs-check">(.*?)</pre>', done.stdout, re.S)
    assert found, f"check script did not run; chromium said: {done.stderr[-500:]}"
    check = json.loads(html.unescape(found.group(1)))
    assert len(check["images"]) == len(files.figures) >= 5
    assert all(image["width"] > 0 for image in check["images"]), check["images"]
    gains = [float(value) for value in check["sorted"]]
    assert len(gains) == 6 and gains == sorted(gains)
