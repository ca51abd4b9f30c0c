"""YAML that remembers where every value came from.

Pydantic reports *what* is wrong as a location path (``shots → 3 → pose``); a person editing a
forty-line file needs the *line*. So the file is composed into PyYAML nodes first (which carry
marks), constructed into plain data with the safe constructor, and the node tree is walked once
to map every path to the line of its key (or item). Any error location then resolves to the
closest known ancestor, so even "field required" points at the mapping that lacks the field.

Duplicate keys are reported too: PyYAML silently keeps the last one, which in a shot list means
a shot that quietly loses its first ``pose``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from onmodel.yamlload import SafeLoader

LocPart = str | int
Loc = tuple[LocPart, ...]


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in the source file."""

    line: int
    column: int


@dataclass
class PositionedYaml:
    """Plain data (dicts, lists, scalars) plus the position of every path in it."""

    data: Any
    positions: dict[Loc, Position] = field(default_factory=dict)
    duplicates: list[tuple[Loc, Position, Position]] = field(default_factory=list)

    def position_of(self, loc: Sequence[LocPart]) -> Position:
        """The position of ``loc`` or, failing that, of its closest recorded ancestor."""
        parts = tuple(loc)
        while parts:
            found = self.positions.get(parts)
            if found is not None:
                return found
            parts = parts[:-1]
        return self.positions.get((), Position(1, 1))


class YamlSyntaxError(ValueError):
    """The text is not YAML; ``position`` says where the parser gave up."""

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
        node = loader.get_single_node()
        duplicates = _duplicates(node, ()) if node is not None else []
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or str(exc)
        context = f" ({exc.context})" if exc.context else ""
        raise YamlSyntaxError(f"{problem}{context}", _position(exc.problem_mark)) from exc
    except yaml.YAMLError as exc:  # unmarked errors are rare (encoding); still one message
        raise YamlSyntaxError(str(exc), Position(1, 1)) from exc
    finally:
        loader.dispose()
    result = PositionedYaml(data=data, duplicates=duplicates)
    if node is not None:
        result.positions[()] = _position(node.start_mark)
        _walk(node, (), result)
    return result


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


def _duplicates(node: yaml.Node, loc: Loc) -> list[tuple[Loc, Position, Position]]:
    """Keys written twice in one mapping, found before merge keys are flattened.

    Overriding a key that came in through ``<<: *base`` is legitimate, so this looks at the
    mapping as written, where merged entries still sit behind their ``<<`` key.
    """
    found: list[tuple[Loc, Position, Position]] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[LocPart, Position] = {}
        for key_node, value_node in node.value:
            key = _key_text(key_node)
            where = _position(key_node.start_mark)
            if key_node.tag != "tag:yaml.org,2002:merge":
                if key in seen:
                    found.append(((*loc, key), seen[key], where))
                seen[key] = where
            found.extend(_duplicates(value_node, (*loc, key)))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found.extend(_duplicates(item, (*loc, index)))
    return found


def _walk(node: yaml.Node, loc: Loc, out: PositionedYaml) -> None:
    """Record each key's position under its path; recurse into values.

    Runs after construction, so merge keys (``<<: *base``) have already been flattened into
    the mapping by the safe constructor; an explicit key comes after the merged ones and wins.
    """
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*loc, _key_text(key_node))
            out.positions[child] = _position(key_node.start_mark)
            _walk(value_node, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*loc, index)
            out.positions[child] = _position(item.start_mark)
            _walk(item, child, out)
