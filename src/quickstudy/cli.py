"""The `quickstudy` command line.

Commands are thin: they parse arguments, call one stage's functions and
print. Any QuickstudyError becomes one line on stderr and a non-zero exit,
here and nowhere else.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from quickstudy.errors import QuickstudyError

app = typer.Typer(
    help="Measure how quickly instruction-tuned language models learn new tasks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

data_app = typer.Typer(help="Task collections: validate, statistics, synthetic tasks.", no_args_is_help=True)
study_app = typer.Typer(help="Whole studies: plan, run, resume, status.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(study_app, name="study")


# --- data commands (issue: foundation) --------------------------------------


@data_app.command("synth")
def data_synth(
    out: Path = typer.Argument(..., help="Folder to write the collection to (tasks/ and splits/default/)."),
    seed: int = typer.Option(0, help="Generation seed; the same seed writes byte-identical files."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it already exists."),
) -> None:
    """Write the synthetic task collection used by the built-in demo."""
    from quickstudy.data.synth import write_synth_collection

    written = write_synth_collection(out, seed=seed, overwrite=force)
    n_categories = len({task["Categories"][0] for task in written.tasks.values()})
    console.print(
        f"{out}: {len(written.tasks)} tasks ({len(written.seen)} seen, {len(written.unseen)} unseen) in {n_categories} categories",
        markup=False, highlight=False, soft_wrap=True,
    )  # fmt: skip


# --- prompts command (issue: encodings) --------------------------------------


# --- evaluate command (issue: evaluation) ------------------------------------


# --- train command (issue: fine-tuning engine) -------------------------------


# --- study commands (issue: studies) -----------------------------------------


# --- report command (issue: report) ------------------------------------------


# --- demo command (issue: built-in demo) -------------------------------------


def main() -> None:
    """Entry point: run the app, turning QuickstudyError into one line and an exit code."""
    try:
        app(standalone_mode=False)
    except QuickstudyError as error:
        err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted; finished work is kept, re-run the same command to resume")
        sys.exit(130)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as error:  # click usage errors come through here in non-standalone mode
        import click

        if isinstance(error, click.ClickException):
            error.show()
            sys.exit(error.exit_code)
        raise


if __name__ == "__main__":
    main()
