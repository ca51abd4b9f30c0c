"""YAML that remembers where every value came from.

Pydantic reports *what* is wrong as a location path (``shots → 3 → pose``); a person editing a
forty-line file needs the *line*. So the file is composed into PyYAML nodes first (which carry
marks), constructed into plain data with the safe constructor, and an error location is
resolved by following its path down the node tree; a path that stops early resolves to the
closest ancestor, so even "field required" points at the mapping that lacks the field.

Paths are resolved on demand rather than listed up front: with aliases one node stands at many
paths, and listing them all is exactly the work an alias bomb multiplies. Each mapping node is
indexed the first time a lookup passes through it, so every node is read at most once however
many errors there are. The loader refuses recursive and oversized expansions
(:mod:`onmodel.yamlload`) before any of this runs.

Duplicate keys are reported too: PyYAML silently keeps the last one, which in a shot list means
a shot that quietly loses its first ``pose``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from onmodel.yamlload import SafeLoader, YamlLimitError, compose

LocPart = str | int
Loc = tuple[LocPart, ...]


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in the source file."""

    line: int
    column: int


@dataclass
class PositionedYaml:
    """Plain data (dicts, lists, scalars) plus the node tree that says where each part was."""

    data: Any
    root: yaml.Node | None = None
    duplicates: list[tuple[Loc, Position, Position]] = field(default_factory=list)
    _entries: dict[int, dict[LocPart, tuple[yaml.Node, yaml.Node]]] = field(
        default_factory=dict, repr=False
    )

    def position_of(self, loc: Sequence[LocPart]) -> Position:
        """The position of ``loc`` or, failing that, of its closest ancestor in the file.

        A mapping entry is placed at its key, a list item at the item, the whole file at its
        first node.
        """
        if self.root is None:
            return Position(1, 1)
        node, mark = self.root, self.root.start_mark
        for part in loc:
            child = self._child(node, part)
            if child is None:
                break
            node, mark = child
        return _position(mark)

    def _child(self, node: yaml.Node, part: LocPart) -> tuple[yaml.Node, yaml.Mark] | None:
        """The node at ``part`` under ``node`` and the mark that names it, if there is one."""
        if isinstance(node, yaml.SequenceNode):
            if isinstance(part, int) and 0 <= part < len(node.value):
                item: yaml.Node = node.value[part]
                return item, item.start_mark
            return None
        if not isinstance(node, yaml.MappingNode):
            return None
        entries = self._entries.get(id(node))
        if entries is None:
            # Merge keys are flattened by construction, merged entries first, so the last
            # entry of a key is the one that won, and its key node is where it was written.
            entries = {_key_text(k): (k, v) for k, v in node.value}
            self._entries[id(node)] = entries
        entry = entries.get(part)
        if entry is None:
            return None
        key_node, value_node = entry
        return value_node, key_node.start_mark


class YamlSyntaxError(ValueError):
    """The text cannot be loaded; the message says why and ``position`` where."""

    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.position = position


def _position(mark: yaml.Mark | None) -> Position:
    if mark is None:
        return Position(1, 1)
    return Position(mark.line + 1, mark.column + 1)


def load_positioned(text: str) -> PositionedYaml:
    """Parse one YAML document with the safe loader, keeping positions; empty text is None."""
    loader = SafeLoader(text)
    try:
        node = compose(loader)
        duplicates = _duplicates(node) if node is not None else []
        data = loader.construct_document(node) if node is not None else None
    except YamlLimitError as exc:
        raise YamlSyntaxError(exc.problem, _position(exc.problem_mark)) from exc
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or str(exc)
        context = f" ({exc.context})" if exc.context else ""
        raise YamlSyntaxError(
            f"not valid YAML: {problem}{context}", _position(exc.problem_mark)
        ) from exc
    except yaml.YAMLError as exc:  # unmarked errors are rare (encoding); still one message
        raise YamlSyntaxError(f"not valid YAML: {exc}", Position(1, 1)) from exc
    finally:
        loader.dispose()
    return PositionedYaml(data=data, root=node, duplicates=duplicates)


def _key_text(node: yaml.Node) -> LocPart:
    """Mapping keys as pydantic names them: strings (ints stay ints for list-like maps)."""
    if isinstance(node, yaml.ScalarNode):
        if node.tag == "tag:yaml.org,2002:int":
            try:
                return int(node.value)
            except ValueError:
                return str(node.value)
        return str(node.value)
    return f"<{type(node).__name__}>"


def _duplicates(root: yaml.Node) -> list[tuple[Loc, Position, Position]]:
    """Keys written twice in one mapping, found before merge keys are flattened.

    Overriding a key that came in through ``<<: *base`` is legitimate, so this looks at the
    mapping as written, where merged entries still sit behind their ``<<`` key. A duplicate is
    a fact about the text, not about a path, so each node is checked once, at the first path
    that reaches it (in file order), however many aliases point at it.
    """
    found: list[tuple[Loc, Position, Position]] = []
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while stack:
        node, loc = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        children: list[tuple[yaml.Node, Loc]] = []
        if isinstance(node, yaml.MappingNode):
            seen: dict[LocPart, Position] = {}
            for key_node, value_node in node.value:
                key = _key_text(key_node)
                where = _position(key_node.start_mark)
                if key_node.tag != "tag:yaml.org,2002:merge":
                    if key in seen:
                        found.append(((*loc, key), seen[key], where))
                    seen[key] = where
                children.append((value_node, (*loc, key)))
        elif isinstance(node, yaml.SequenceNode):
            children = [(item, (*loc, index)) for index, item in enumerate(node.value)]
        stack.extend(reversed(children))
    return found
