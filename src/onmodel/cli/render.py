"""Shared text renderings of images and trees, so every command shows them the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from onmodel.lineage import Lineage
from onmodel.status import ImageStatus, status_mark

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult

    from onmodel.handles import Image, TreeNode

STATUS_COLOURS: dict[str, str] = {ImageStatus.SUCCEEDED: "green", ImageStatus.FAILED: "red"}


def describe_image_line(image: Image) -> str:
    size = f" {image.width}x{image.height}" if image.width else ""
    where = f" {image.path}" if image.path else ""
    error = f" — {image.error_message}" if image.error_message else ""
    mark = status_mark(image.status)
    return f"#{image.id} {mark} {image.kind} {image.label!r}{size}{where}{error}"


def tree_label(image: Image, head_id: int | None) -> str:
    mark = status_mark(image.status)
    head = " [bold cyan]← head[/bold cyan]" if image.id == head_id else ""
    colour = STATUS_COLOURS.get(image.status, "yellow")
    extra = (
        f" [dim]{image.provider}/{image.model}[/dim]"
        if image.model
        else f" [dim]{image.provider}[/dim]"
    )
    return f"[{colour}]#{image.id} {mark}[/{colour}] {image.kind}: {image.label}{extra}{head}"


def rich_tree(node: TreeNode, head_id: int | None, title: str) -> _LineageText:
    """``title``, then the lineage under ``node``; for ``console.print``."""
    return _LineageText(node, head_id, title)


@dataclass(frozen=True)
class _LineageText:
    """A lineage drawn as text, one line per image.

    Drawn from :meth:`Lineage.rows`: a straight run of shots is one column with no guides,
    and only a fork's branches are indented, under ``├──``/``└──``. Rich's own ``Tree``
    nests a renderable per level and draws guides for every level, so a 100,000-shot series
    would cost nodes × depth; here a line costs its fork depth.
    """

    root: TreeNode
    head_id: int | None
    title: str

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.text import Text

        yield console.render_str(self.title)
        guides: list[str] = []  # per open branch level: what continues its column's lines
        for row in Lineage([self.root]).rows():
            if row.depth == 0:
                lead = ""
            elif row.opens:
                del guides[row.depth - 1 :]
                guides.append("    " if row.last else "│   ")
                lead = "".join(guides[:-1]) + ("└── " if row.last else "├── ")
            else:
                lead = "".join(guides)
            # The guides are plain text; the label is markup, and render_str is where the
            # CLI's console escapes control characters.
            yield Text.assemble(lead, console.render_str(tree_label(row.node.image, self.head_id)))
