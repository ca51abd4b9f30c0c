"""The ``onmodel`` command: groups and top-level commands, and the one place errors are printed."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from onmodel.cli import account, admin, batch, characters, gallery, sessions, shots
from onmodel.cli.output import console, err_console, one_line

app = typer.Typer(
    help="Keep an AI-generated character on model across a whole series of images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(characters.app, name="character")
app.add_typer(sessions.app, name="session")
app.add_typer(batch.app, name="batch")
app.add_typer(admin.db_app, name="db")
app.add_typer(admin.templates_app, name="templates")
app.command("shot")(shots.shot)
app.command("tree")(shots.tree)
app.command("show")(shots.show)
app.command("retry")(shots.retry)
app.command("attach")(shots.attach)
app.command("cost")(account.cost)
app.command("models")(account.models)
app.command("export")(gallery.export)
app.command("serve")(gallery.serve)


@app.command("demo")
def demo(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="A new folder for the demo (default: a fresh temp folder)."),
    ] = None,
) -> None:
    """Make the seeds' series offline: a character, then six shots, and show the lineage."""
    import tempfile

    from onmodel.cli.render import describe_image_line, rich_tree
    from onmodel.demo import run_demo
    from onmodel.errors import UsageError

    if directory is None:
        home = Path(tempfile.mkdtemp(prefix="onmodel-demo-"))
    elif directory.exists() and any(directory.iterdir()):
        raise UsageError(f"{directory} is not empty; the demo needs a fresh folder")
    else:
        home = directory
    result = run_demo(home)
    console.print(
        f"[bold]onmodel demo[/bold] — {result.character.name}, {len(result.images)} images"
    )
    title = f"[bold]{result.session.slug}[/bold] — {result.character.name}"
    console.print(rich_tree(result.session.tree(), result.images[-1].id, title))
    for image in result.images:
        console.print(describe_image_line(image))
    console.print(f"\ndata folder: {home}")
    console.print(f"images: {home / 'blobs'}")
    console.print(f"explore it: ONMODEL_HOME={home} onmodel tree")


def main() -> None:
    """Entry point: every onmodel error becomes one line and an exit code, never a traceback."""
    from onmodel.errors import OnmodelError

    try:
        app()
    except OnmodelError as exc:
        err_console.print(f"error: {one_line(exc)}", markup=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted; the shot in progress is recorded as interrupted")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("ONMODEL_DEBUG"):
            raise
        err_console.print(
            f"error: unexpected {type(exc).__name__}: {one_line(exc)} "
            "(set ONMODEL_DEBUG=1 to see the traceback)",
            markup=False,
        )
        sys.exit(1)
