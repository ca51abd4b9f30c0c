"""Shared text renderings of images and trees, so every command shows them the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.tree import Tree

    from onmodel.handles import Image, TreeNode

STATUS_MARKS = {"succeeded": "✓", "failed": "✗", "pending": "…", "interrupted": "!"}


def describe_image_line(image: Image) -> str:
    row = image.row
    mark = STATUS_MARKS.get(row.status, "?")
    size = f" {row.width}x{row.height}" if row.width else ""
    where = f" {image.path}" if image.path else ""
    error = f" — {row.error_message}" if row.error_message else ""
    return f"#{image.id} {mark} {image.kind} {image.label!r}{size}{where}{error}"


def tree_label(image: Image, head_id: int | None) -> str:
    row = image.row
    mark = STATUS_MARKS.get(row.status, "?")
    head = " [bold cyan]← head[/bold cyan]" if image.id == head_id else ""
    colour = {"succeeded": "green", "failed": "red"}.get(row.status, "yellow")
    extra = (
        f" [dim]{row.provider}/{row.model}[/dim]" if row.model else f" [dim]{row.provider}[/dim]"
    )
    return f"[{colour}]#{image.id} {mark}[/{colour}] {image.kind}: {image.label}{extra}{head}"


def rich_tree(node: TreeNode, head_id: int | None, title: str) -> Tree:
    from rich.tree import Tree

    root = Tree(title)
    stack = [(root.add(tree_label(node.image, head_id)), node)]
    while stack:
        branch, current = stack.pop()
        for child in current.children:
            stack.append((branch.add(tree_label(child.image, head_id)), child))
    return root
