"""``onmodel models``: what each model accepts (``onmodel cost`` is in ``cli/costs.py``)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer
from rich.text import Text

from onmodel.cli.output import Column, print_json, print_table


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
        Column("routes", drop=4),
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
                ", ".join(cap.routes) or "-",
                sizes,
                ", ".join(cap.qualities),
                ", ".join(cap.input_fidelity) or "-",
                str(cap.max_input_images),
                str(cap.max_prompt_chars),
                shutdown,
            )
        )
    print_table(columns, rows)
