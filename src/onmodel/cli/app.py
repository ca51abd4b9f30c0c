"""The ``onmodel`` command: groups and top-level commands, and the one place errors are printed."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, NoReturn, get_args

import typer
from typer.core import TyperArgument

from onmodel.cli import (
    account,
    admin,
    batch,
    characters,
    checks,
    costs,
    curation,
    gallery,
    images,
    providers,
    sessions,
    shots,
)
from onmodel.cli.output import console, err_console, one_line
from onmodel.settings import Settings
from onmodel.startup import tune_collector

app = typer.Typer(
    help="Keep an AI-generated character on model across a whole series of images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(wanted: bool) -> None:
    """``--version``: the installed distribution's version, read only when asked for."""
    if wanted:
        from importlib.metadata import version

        console.print(f"onmodel {version('onmodel')}", markup=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Keep an AI-generated character on model across a whole series of images."""


app.add_typer(characters.app, name="character")
app.add_typer(sessions.app, name="session")
app.add_typer(batch.app, name="batch")
app.add_typer(admin.db_app, name="db")
app.add_typer(admin.templates_app, name="templates")
app.command("shot")(shots.shot)
app.command("tree")(shots.tree)
app.command("show")(shots.show)
app.command("check")(checks.check)
app.command("retry")(shots.retry)
app.command("attach")(shots.attach)
app.command("images")(images.images)
app.command("star")(curation.star)
app.command("rate")(curation.rate)
app.command("note")(curation.note)
app.command("tag")(curation.tag)
app.command("hide")(curation.hide)
app.command("delete")(curation.hide)
app.command("unhide")(curation.unhide)
app.command("purge")(curation.purge)
app.command("cost")(costs.cost)
app.command("models")(account.models)
app.command("providers")(providers.providers)
app.command("export")(gallery.export)
app.command("serve")(gallery.serve)


@app.command("demo")
def demo(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Make it in this folder (new, or a data folder) instead of ONMODEL_HOME or "
            "the demo's own folder.",
        ),
    ] = None,
) -> None:
    """Make the seeds' series offline: a character, six shots and their lineage, then a
    check report and a drifted take caught and retaken."""
    import shlex

    from onmodel.cli.checks import print_check, print_retakes
    from onmodel.cli.render import describe_image_line, print_lineage
    from onmodel.demo import choose_demo_home, run_demo

    choice = choose_demo_home(directory)
    result = run_demo(choice.home, make_current=choice.owned)
    console.print(
        f"[bold]onmodel demo[/bold] — {result.character.name}, {len(result.images)} images"
    )
    session = result.session
    console.print(f"[bold]{session.slug}[/bold] — {result.character.name}")
    print_lineage(
        console,
        session.lineage().view(),
        session.studio.lookups.images_by_id,
        result.images[-1].id,
        lambda fold: "",
    )
    for image in result.images:
        console.print(describe_image_line(image))
    console.print("\n[bold]check report[/bold] (palette: each shot against its anchors)")
    for image, record in result.checks:
        print_check(image, record, prefix="  ")
    console.print("\n[bold]retake[/bold]: take 1 drawn with the hair off model on purpose")
    print_retakes(result.retakes)
    home = shlex.quote(str(choice.home))
    console.print(f"\ndata folder: {choice.home}", markup=False)
    console.print(f"images: {choice.home / 'blobs'}", markup=False)
    console.print(f"explore it: ONMODEL_HOME={home} onmodel tree {session.slug}", markup=False)
    if choice.default:
        console.print(
            f"every onmodel demo reuses this folder; remove it with: rm -rf {home}", markup=False
        )


def main() -> None:
    """Entry point: every onmodel error becomes one line and an exit code, never a traceback."""
    tune_collector()
    try:
        _run()
    except SystemExit as exc:
        _leave(exc.code)
    _leave(0)


def _run() -> None:
    from onmodel.errors import OnmodelError

    try:
        code = _command()(standalone_mode=False)
    except _CLICK_ERROR as exc:
        _usage_error(exc)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(1)
    except OnmodelError as exc:
        err_console.print(f"error: {one_line(exc)}{_advice(exc)}", markup=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted; the shot in progress is recorded as interrupted")
        sys.exit(130)
    except Exception as exc:
        if Settings.from_environment().debug:
            raise
        err_console.print(
            f"error: unexpected {type(exc).__name__}: {_shortened(one_line(exc))} "
            "(set ONMODEL_DEBUG=1 to see the traceback)",
            markup=False,
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _advice(exc: Exception) -> str:
    """What the user can type next, worded here rather than by the library."""
    from onmodel.errors import EmptyRequestError, GenerationError

    if isinstance(exc, GenerationError) and exc.retryable and exc.image_id is not None:
        return f"; run again with: onmodel retry {exc.image_id}"
    if isinstance(exc, EmptyRequestError):
        return " (e.g. onmodel shot --pose waving, or onmodel shot --same)"
    return ""


def _command() -> Any:
    """The click command typer builds from ``app``, its help naming values in words.

    Typer shows each parameter's Python type (``<bool>`` after a flag, ``<list[Path]>``,
    ``<str>``); help reads better with a word for an option's value (``TEXT``, ``N``,
    ``PATH``, the choices) and nothing after a flag or an argument, whose name already says
    what it is. Set here once, for every command, rather than on each option.
    """
    command = typer.main.get_command(app)
    _name_values(command)
    return command


def _name_values(command: Any) -> None:
    # A command's line in its group's list is its docstring's first paragraph, which rich
    # prints with the docstring's own line breaks: as one line, it wraps to the screen.
    if getattr(command, "short_help", None) is None and command.help:
        command.short_help = " ".join(command.help.split("\n\n")[0].split())
    # --help is made on first use; made now (from a context with the default option names,
    # which onmodel keeps), it is named like the rest
    command.get_help_option(command.context_class(command))
    for param in command.get_params(command.context_class(command)):
        described = getattr(param, "type_descriptor", None)  # typer releases that show types
        if described is None or param.metavar is not None:
            continue
        if isinstance(param, TyperArgument):
            param.__class__ = _UntypedArgument
        else:
            param.metavar = "" if param.is_flag else _value_word(described)
    for subcommand in getattr(command, "commands", {}).values():
        _name_values(subcommand)


class _UntypedArgument(TyperArgument):
    """An argument shown by its name alone, without typer's type beside it."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


_WORDS: dict[object, str] = {str: "TEXT", int: "N", float: "NUMBER", Path: "PATH"}


def _value_word(described: Any) -> str:
    if described.is_choice:
        return "[" + "|".join(str(getattr(c, "value", c)) for c in described.choices) + "]"
    kind = get_args(described.annotation)[0] if described.is_list else described.annotation
    return _WORDS.get(kind, "VALUE")


def _shortened(message: str, limit: int = 300) -> str:
    """Driver errors can quote a whole SQL statement and its parameters: keep the gist."""
    return message if len(message) <= limit else message[: limit - 1] + "…"


# Typer bundles its own copy of click (older releases use click itself); its usage errors are
# found through a class Typer exports, whichever click that is.
_CLICK_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


def _usage_error(exc: Exception) -> NoReturn:
    """A usage error is one line like every other error, not click's framed box.

    Bare ``onmodel`` (or a bare group) still shows its help, as click would.
    """
    if type(exc).__name__ == "NoArgsIsHelpError":
        context = getattr(exc, "ctx", None)
        if context is not None:
            help_text = context.get_help()
            if help_text:
                console.print(help_text, markup=False)
        sys.exit(2)
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    context = getattr(exc, "ctx", None)
    where = f" (see: {context.command_path} --help)" if context is not None else ""
    err_console.print(f"error: {one_line(message)}{where}", markup=False)
    sys.exit(int(getattr(exc, "exit_code", 2)))


def _leave(code: str | int | None) -> NoReturn:
    """Exit without tearing the interpreter down, when nothing else is still running.

    Freeing every object of SQLAlchemy, pydantic and the openai SDK one by one takes about half
    a second, longer than many commands take to run; the operating system reclaims it all at
    once. ``atexit`` handlers still run (the database is closed cleanly), and output is
    flushed. mypy ends its runs the same way (``mypy.util.hard_exit``). With other threads
    alive (a server's workers) the normal exit waits for them instead.
    """
    if threading.active_count() > 1:
        sys.exit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): printed, exit 1, as the interpreter would
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        # a closed pipe (onmodel ... | head) or a closed stream has nothing left to flush to
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)
