"""``onmodel cost`` and ``onmodel models``: what was spent, and what each model accepts."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer
from rich.text import Text

from onmodel.cli.context import open_studio
from onmodel.cli.output import Column, console, print_json, print_table


def cost(
    session: Annotated[str | None, typer.Argument(help="Slug or id (default: current).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Estimated spend of a session, by model; unknown prices are shown as unknown."""
    report = open_studio().cost(session)
    if json_out:
        print_json(report.to_dict())
        return
    console.print(f"[bold]{report.scope}[/bold]: ${report.total} over {report.images} images")
    for model, amount in sorted(report.by_model.items()):
        console.print(f"  {model}: ${amount}")
    if report.unknown:
        console.print(f"  [yellow]{report.unknown} image(s) of unknown cost (not counted)[/yellow]")


def models(
    all_models: Annotated[bool, typer.Option("--all", help="Include retired models.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """The model capability table: sizes, qualities, limits, shutdown dates."""
    from onmodel.capabilities import default_model, load_capabilities
    from onmodel.config import resolve_paths

    table = load_capabilities(resolve_paths().models_file)
    today = date.today()
    caps = [c for c in table if all_models or not c.is_retired(today)]
    if json_out:
        print_json([c.model_dump(mode="json") for c in caps])
        return
    columns = (
        Column("model", identifier=True),
        Column("sizes"),
        Column("qualities"),
        Column("fidelity", drop=1),
        Column("inputs", drop=3),
        Column("prompt", drop=2),
        Column("shutdown"),
    )
    rows: list[tuple[str | Text, ...]] = []
    for cap in caps:
        sizes = ", ".join(cap.sizes) + (" + custom WxH" if cap.custom_sizes else "")
        name = cap.name + ("\n(default)" if cap.name == default_model() else "")
        if cap.is_retired(today):
            shutdown = Text(f"retired {cap.shutdown}", style="red")
        else:
            shutdown = Text(str(cap.shutdown), style="yellow") if cap.shutdown else Text("-")
        rows.append(
            (
                name,
                sizes,
                ", ".join(cap.qualities),
                ", ".join(cap.input_fidelity) or "-",
                str(cap.max_input_images),
                str(cap.max_prompt_chars),
                shutdown,
            )
        )
    print_table(columns, rows)
