"""The report: a study directory in, report.md / report.html / results.csv / summary.json out."""

from quickstudy.report.render import ReportFiles, build_report

__all__ = ["ReportFiles", "build_report"]
