"""A report as a list of blocks, rendered to Markdown and to self-contained HTML.

Both renderings walk the same blocks, so the two files cannot disagree.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

from quickstudy.report.figures import Figure


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[str]]
    sortable: bool = False
    caption: str | None = None
    numeric: list[bool] = field(default_factory=list)  # right-align and sort as numbers


@dataclass(frozen=True)
class Image:
    figure: Figure


Block = Heading | Paragraph | Bullets | Table | Image


def _md(text: str) -> str:
    """Text from data as Markdown shows it: no raw HTML (a category named `<script>` stays text)."""
    return html.escape(text, quote=False)


def _md_cell(text: str) -> str:
    return _md(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block], figures_dir: Path, out_dir: Path) -> str:
    """Markdown with figures linked relative to `out_dir`."""
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + _md(block.text), ""]
        elif isinstance(block, Paragraph):
            lines += [_md(block.text), ""]
        elif isinstance(block, Bullets):
            lines += [f"- {_md(item)}" for item in block.items] + [""]
        elif isinstance(block, Table) and not block.rows:
            lines += [(_md(block.caption) + " " if block.caption else "") + "(nothing yet)", ""]
        elif isinstance(block, Table):
            if block.caption:
                lines += [_md(block.caption), ""]
            aligns = [("---:" if block.numeric and block.numeric[i] else "---") for i in range(len(block.columns))]
            lines.append("| " + " | ".join(_md_cell(c) for c in block.columns) + " |")
            lines.append("|" + "|".join(aligns) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            lines.append("")
        elif isinstance(block, Image):
            relative = (
                block.figure.path.relative_to(out_dir)
                if block.figure.path.is_relative_to(out_dir)
                else block.figure.path
            )
            lines += [f"![{_md(block.figure.title)}]({relative.as_posix()})", "", f"*{_md(block.figure.caption)}*", ""]
    return "\n".join(lines).rstrip() + "\n"


STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #0072B2;padding-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.86em;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #ccc;padding:.25em .55em;white-space:nowrap}th{background:#f2f5f8;white-space:normal;min-width:4.5em}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr:nth-child(even) td{background:#fafafa}
table.sortable th{cursor:pointer}table.sortable th:after{content:' \\2195';color:#999}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}figcaption{font-size:.88em;color:#444}
.caption{font-size:.9em;color:#444;margin-bottom:.2em}
"""

# Sorts a table by the clicked column: numbers numerically (blank and '-' last), text alphabetically.
SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function(th){
  th.addEventListener('click', function(){
    var table = th.closest('table'), body = table.tBodies[0], col = th.cellIndex;
    var asc = th.dataset.order !== 'asc'; th.dataset.order = asc ? 'asc' : 'desc';
    var key = function(row){ var t = row.cells[col].textContent.trim(); var n = parseFloat(t.replace(/[+%,]/g, ''));
      return isNaN(n) ? t : n; };
    Array.from(body.rows).sort(function(a, b){ var x = key(a), y = key(b);
      if (typeof x !== typeof y) return typeof x === 'number' ? -1 : 1;
      return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1); }).forEach(function(r){ body.appendChild(r); });
  });
});
"""


def to_html(blocks: list[Block], title: str) -> str:
    """One self-contained HTML file: figures inlined as base64 PNG, sorting script inline."""
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Table):
            parts.append(_html_table(block))
        elif isinstance(block, Image):
            data = base64.b64encode(block.figure.path.read_bytes()).decode("ascii")
            parts.append(
                f"<figure><img alt='{html.escape(block.figure.title)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{html.escape(block.figure.caption)}</figcaption></figure>"
            )
    parts.append(f"<script>{SORT_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def _inline(text: str) -> str:
    """Escape, then turn Markdown **bold** and `code` into HTML."""
    escaped = html.escape(text)
    for marker, tag in (("**", "strong"), ("`", "code")):
        pieces = escaped.split(marker)
        escaped = (
            "".join(p if i % 2 == 0 else f"<{tag}>{p}</{tag}>" for i, p in enumerate(pieces))
            if len(pieces) % 2
            else escaped
        )
    return escaped


def _html_table(table: Table) -> str:
    if not table.rows:
        return f"<p>{_inline(table.caption or '')} (nothing yet)</p>"
    numeric = table.numeric or [False] * len(table.columns)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    rows = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if numeric[i] else ''}>{html.escape(v)}</td>" for i, v in enumerate(row))
        + "</tr>"
        for row in table.rows
    )
    caption = f"<div class='caption'>{_inline(table.caption)}</div>" if table.caption else ""
    css = " class='sortable'" if table.sortable else ""
    return f"{caption}<table{css}><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
