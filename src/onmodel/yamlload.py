"""PyYAML's safe loader, in C where PyYAML was built with libyaml (its wheels are), with bounds.

The capability and price tables are read on every command that plans a shot and a shot list
on every batch command; the pure-Python parser took 50 ms for the two tables alone, the C one
takes a tenth of that. Both build the same data, raise the same errors with line and column,
and keep the marks the shot-list loader uses for line numbers.

Aliases make YAML a compression format: nine lines of ``&a [*b, *b, ...]`` stand for a billion
values ("billion laughs"), and ``&r [*r]`` for an endless one. The constructor shares aliased
objects, so loading is cheap, but anything that then walks the data (validation, line lookup,
JSON, a deep copy) pays for every expanded value or never ends. So every document is measured
as a graph of its distinct nodes, each visited once, and refused before construction when
aliases refer to themselves or expand it past :data:`MAX_NODES` values or :data:`MAX_DEPTH`
levels. No legitimate sheet, table or shot list comes near either bound.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import yaml

_BaseLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_SEXAGESIMAL = ("int", "float")


class SafeLoader(_BaseLoader):  # type: ignore[misc]
    """The safe loader without YAML 1.1's base-60 numbers: ``aspect_ratio: 16:9`` is the
    text ``16:9`` (as YAML 1.2 reads it), not the number 969."""

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = {
        first: [
            (tag, regexp)
            for tag, regexp in resolvers
            if not (tag.endswith(_SEXAGESIMAL) and ":" in regexp.pattern)
        ]
        for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
    }


for _tag, _pattern, _first in (
    (
        "tag:yaml.org,2002:int",
        r"""^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$""",
        list("-+0123456789"),
    ),
    (
        "tag:yaml.org,2002:float",
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"""
        r"""|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""",
        list("-+0123456789."),
    ),
):
    SafeLoader.add_implicit_resolver(_tag, re.compile(_pattern, re.X), _first)

MAX_NODES = 100_000
"""Keys and values a document may hold once every alias is expanded in place."""
MAX_DEPTH = 64
"""Levels of nesting a document may reach once every alias is expanded in place."""


class YamlLimitError(yaml.YAMLError):
    """A document whose aliases are recursive or expand past the bounds; one line, with where.

    A ``YAMLError`` so that every caller that already turns bad YAML into a one-line usage error
    (model sheets, capability tables) refuses it the same way, without knowing about the limit.
    """

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        self.problem = problem
        self.problem_mark = mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        super().__init__(f"{problem}{where}")


def compose(loader: Any) -> yaml.Node | None:
    """The loader's single document as nodes, refused when its expansion is out of bounds."""
    node: yaml.Node | None = loader.get_single_node()
    if node is not None:
        check_expansion(node)
    return node


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` through :data:`SafeLoader`, refusing alias bombs and cycles."""
    loader = SafeLoader(text)
    try:
        node = compose(loader)
        return loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_expansion(root: yaml.Node) -> int:
    """Return how many values ``root`` expands to; raise :class:`YamlLimitError` past a bound.

    An alias is the very node object it names, so the document is a graph. Each distinct node's
    expanded size and height are computed once, children first, with an explicit stack: the
    work is proportional to the text, not to the expansion, and nesting cannot overflow
    Python's stack. A node met again while its own children are being measured is a cycle.
    """
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded values, levels)
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, measured_children = stack.pop()
        key = id(node)
        if measured_children:
            open_nodes.discard(key)
            children = [sizes[id(child)] for child in _children(node)]
            size = 1 + sum(count for count, _ in children)
            depth = 1 + max((levels for _, levels in children), default=0)
            if size > MAX_NODES:
                raise YamlLimitError(
                    f"this expands to more than {MAX_NODES:,} keys and values (aliases counted "
                    f"in full); a file may hold at most {MAX_NODES:,}",
                    node.start_mark,
                )
            if depth > MAX_DEPTH:
                raise YamlLimitError(
                    f"nested more than {MAX_DEPTH} levels deep (counting aliases expanded)",
                    node.start_mark,
                )
            sizes[key] = (size, depth)
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise YamlLimitError("an alias refers to a node that contains it", node.start_mark)
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return sizes[id(root)][0]
