"""``onmodel providers``: what each installed provider is, and whether it can be used now."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from onmodel.cli.output import Column, print_json, print_table


def describe_providers() -> list[dict[str, Any]]:
    """Every registered provider's traits, as it declares them (nothing is called that costs
    money; a local server may be asked whether it answers). A plugin that fails to load is
    listed with the reason instead of hiding the others."""
    from onmodel.capabilities import default_model
    from onmodel.providers import get_provider, provider_names

    found: list[dict[str, Any]] = []
    for name in provider_names():
        try:
            provider = get_provider(name)
            status = provider.status()
        except Exception as exc:  # a broken plugin: say so, list the rest
            found.append({"name": name, "configured": False, "detail": f"cannot load: {exc}"})
            continue
        found.append(
            {
                "name": name,
                "billed": provider.billed,
                "conversation": provider.keeps_conversation,
                # a limit that depends on parameters (a workflow's slots) as the defaults set it
                "max_input_images": provider.input_limit({}),
                "key_env": list(provider.key_names()),
                "configured": status.configured,
                "detail": status.detail,
                "offline": provider.offline,
                "manual": provider.manual,
                "default_model": provider.default_model or default_model(),
                "module": type(provider).__module__,
            }
        )
    return found


def providers(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """The installed providers: billed or free, whether a shot continues a conversation, the
    most reference images one request takes, the key each needs and whether it is set."""
    found = describe_providers()
    if json_out:
        print_json(found)
        return
    columns = (
        Column("provider", identifier=True),
        Column("billed"),
        Column("conversation", drop=2),
        Column("images"),
        Column("key"),
        Column("default model", drop=1),
        Column("ready"),
    )
    rows: list[tuple[str | Text, ...]] = []
    for each in found:
        if "billed" not in each:
            rows.append((each["name"], "-", "-", "-", "-", "-", Text(each["detail"], style="red")))
            continue
        ready = "yes" if each["configured"] else "no"
        detail = f"{ready}: {each['detail']}" if each["detail"] else ready
        rows.append(
            (
                each["name"],
                "paid" if each["billed"] else "free",
                "yes" if each["conversation"] else "no",
                str(each["max_input_images"]),
                " or ".join(each["key_env"]) or "-",
                each["default_model"],
                Text(detail, style="green" if each["configured"] else "yellow"),
            )
        )
    print_table(columns, rows)
