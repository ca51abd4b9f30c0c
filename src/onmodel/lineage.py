"""A session's lineage as one object that every output walks: the CLI tree, the web pages and
the export.

A long series is a deep chain (each shot continues the last), so nothing here recurses: every
walk keeps its own stack, and a 100,000-deep chain costs what 100,000 siblings would. Python's
recursion limit stops recursive code near a thousand levels, and that includes ``json.dumps``
of nested dicts, hence :func:`iter_json`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from onmodel.handles import Image

JSON_INDENT = 2
# Indentation stops growing here: fully indented, a 100,000-deep chain's JSON would be about
# 100 GB of spaces (quadratic in the depth). Any whitespace is valid JSON, and trees up to this
# deep print exactly as ``json.dumps(indent=2)`` would.
MAX_JSON_INDENT_LEVELS = 32


@dataclass(eq=False)
class TreeNode:
    """One image and the images made from it.

    Compared by identity and shown without its children: the generated ``__eq__`` and
    ``__repr__`` would recurse down the whole chain.
    """

    image: Image
    children: list[TreeNode] = field(default_factory=list, repr=False)

    def walk(self) -> list[Image]:
        """Depth-first, parents before children."""
        return Lineage([self]).walk()

    def to_dict(self) -> dict[str, Any]:
        """The nested form ``onmodel tree --json`` prints; see :meth:`Lineage.to_dicts`."""
        return Lineage([self]).to_dicts()[0]


@dataclass(frozen=True)
class Row:
    """One node as a lineage is drawn: a run of single children is one column, and only a
    fork's branches are indented (one level deeper), so a long straight series stays one
    column and every fork is obvious.
    """

    node: TreeNode
    parent_id: int | None  # the node it hangs from here (in a pruned lineage, the kept one)
    depth: int  # forks above it: how far it is indented
    opens: bool  # the first of its column: a root, or the first node of a branch
    last: bool  # its column is the last branch of its fork (or the last root)
    forks: bool  # it has more than one child: they start the branches drawn below it
    unwind: int  # forks whose last branch ends with this node (a leaf) and so close after it

    @property
    def leaf(self) -> bool:
        return not self.node.children

    @property
    def unwound(self) -> range:
        """The depths of the columns that end after this node, besides its own: each one's
        fork is finished."""
        return range(self.depth - 1, self.depth - 1 - self.unwind, -1)


class Lineage:
    """Trees of images (one root for a session, several once :meth:`prune` lifts children
    up), indexed once so that finding a node, its parent or its depth is a lookup.
    """

    def __init__(self, roots: Sequence[TreeNode]) -> None:
        self.roots = list(roots)
        self._order: list[TreeNode] = []
        self._by_id: dict[int, TreeNode] = {}
        self._parent_id: dict[int, int] = {}
        self._depth: dict[int, int] = {}
        stack = [(root, 0) for root in reversed(self.roots)]
        while stack:
            node, depth = stack.pop()
            key = node.image.id
            self._order.append(node)
            self._by_id[key] = node
            self._depth[key] = depth
            for child in node.children:
                self._parent_id[child.image.id] = key
            stack.extend((child, depth + 1) for child in reversed(node.children))

    def nodes(self) -> list[TreeNode]:
        """Every node, depth-first, parents before children, children in order."""
        return list(self._order)

    def walk(self) -> list[Image]:
        """Every image, in :meth:`nodes` order."""
        return [node.image for node in self._order]

    def find(self, image_id: int) -> TreeNode | None:
        return self._by_id.get(image_id)

    def children(self, image_id: int) -> list[Image]:
        node = self._by_id.get(image_id)
        return [child.image for child in node.children] if node is not None else []

    def depth(self, image_id: int) -> int:
        """How many ancestors the image has here (a root has none)."""
        return self._depth[image_id]

    def ancestors(self, image_id: int) -> list[Image]:
        """The image's ancestors, oldest first (the root, down to its parent)."""
        return [self._by_id[key].image for key in self.ancestor_ids(image_id)]

    def ancestor_ids(self, image_id: int) -> list[int]:
        """:meth:`ancestors` as ids: the export writes them for every image, which on a long
        chain is millions of steps."""
        found: list[int] = []
        key = self._parent_id.get(image_id)
        while key is not None:
            found.append(key)
            key = self._parent_id.get(key)
        return list(reversed(found))

    def to_dicts(self) -> list[dict[str, Any]]:
        """Each root as nested dicts (``children`` inside ``children``), built top-down: each
        node's dict is made before its children's, which are appended to its list."""
        made: dict[int, dict[str, Any]] = {}
        tops: list[dict[str, Any]] = []
        for node in self._order:
            image = node.image
            entry = {
                "id": image.id,
                "kind": image.kind,
                "status": image.status,
                "label": image.label,
                "children": [],
            }
            made[image.id] = entry
            parent_id = self._parent_id.get(image.id)
            (made[parent_id]["children"] if parent_id is not None else tops).append(entry)
        return tops

    def prune(self, keep: Callable[[Image], bool]) -> Lineage:
        """The lineage without the images ``keep`` rejects; their children move up to the
        nearest kept ancestor (or become roots), so a filtered export still reads as one
        lineage. Children are finished before their parent: the order is :meth:`nodes`
        reversed.
        """
        kept: dict[int, list[TreeNode]] = {}
        for node in reversed(self._order):
            children = [k for child in node.children for k in kept.pop(id(child))]
            kept[id(node)] = [TreeNode(node.image, children)] if keep(node.image) else children
        return Lineage([k for root in self.roots for k in kept.pop(id(root))])

    def rows(self) -> list[Row]:
        """Every node as drawn (see :class:`Row`), in :meth:`nodes` order."""
        found: list[Row] = []
        # node, parent id, depth, opens, last, tail: the forks its column's end finishes
        stack: list[tuple[TreeNode, int | None, int, bool, bool, int]] = [
            (root, None, 0, True, i == len(self.roots) - 1, 0)
            for i, root in reversed(list(enumerate(self.roots)))
        ]
        while stack:
            node, parent_id, depth, opens, last, tail = stack.pop()
            children = node.children
            found.append(
                Row(
                    node=node,
                    parent_id=parent_id,
                    depth=depth,
                    opens=opens,
                    last=last,
                    forks=len(children) > 1,
                    unwind=tail if not children else 0,
                )
            )
            key = node.image.id
            if len(children) == 1:
                stack.append((children[0], key, depth, False, last, tail))
                continue
            final = len(children) - 1
            stack.extend(
                (child, key, depth + 1, True, i == final, tail + 1 if i == final else 0)
                for i, child in reversed(list(enumerate(children)))
            )
        return found


def iter_json(value: Any, *, default: Callable[[Any], Any] = str) -> Iterator[str]:
    """``json.dumps(value, indent=2, ensure_ascii=False, default=default)`` in pieces, for any
    depth: the standard encoder recurses once per nesting level (and with ``indent`` it always
    uses its pure-Python, recursive form). Nesting deeper than
    :data:`MAX_JSON_INDENT_LEVELS` is indented no further.
    """
    scalar = json.JSONEncoder(ensure_ascii=False).encode
    # Pending work, last first: text to write, a value to encode at a nesting level, or the
    # end of a container (which leaves ``path``, the containers being written: a cycle is
    # refused as json.dumps refuses it, instead of looping forever).
    stack: list[tuple[int, Any, int]] = [(_VALUE, value, 0)]
    path: set[int] = set()
    while stack:
        kind, current, level = stack.pop()
        if kind == _TEXT:
            yield current
            continue
        if kind == _LEAVE:
            path.discard(current)
            continue
        while current is not None and not isinstance(current, _JSON_TYPES):
            current = default(current)
        if not isinstance(current, list | tuple | dict):
            yield scalar(current)
            continue
        if not current:
            yield "{}" if isinstance(current, dict) else "[]"
            continue
        if id(current) in path:
            raise ValueError("Circular reference detected")
        path.add(id(current))
        inner = "\n" + " " * (JSON_INDENT * min(level + 1, MAX_JSON_INDENT_LEVELS))
        outer = "\n" + " " * (JSON_INDENT * min(level, MAX_JSON_INDENT_LEVELS))
        is_dict = isinstance(current, dict)
        pieces: list[tuple[int, Any, int]] = [(_TEXT, "{" if is_dict else "[", 0)]
        members: Iterable[tuple[Any, Any]] = (
            current.items() if isinstance(current, dict) else ((None, m) for m in current)
        )
        for index, (key, member) in enumerate(members):
            prefix = ("," if index else "") + inner
            pieces.append((_TEXT, prefix + (_json_key(key) + ": " if is_dict else ""), 0))
            pieces.append((_VALUE, member, level + 1))
        pieces.append((_TEXT, outer + ("}" if is_dict else "]"), 0))
        pieces.append((_LEAVE, id(current), 0))
        stack.extend(reversed(pieces))


_TEXT, _VALUE, _LEAVE = range(3)
_JSON_TYPES = (str, int, float, list, tuple, dict)  # bool is an int


def _json_key(key: Any) -> str:
    """A dict key as json.dumps writes it: non-string scalars become strings."""
    if isinstance(key, str):
        return json.dumps(key, ensure_ascii=False)
    if key is None or isinstance(key, int | float):
        return json.dumps(json.dumps(key))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def dump_json(value: Any, out: TextIO) -> None:
    """Write :func:`iter_json` of ``value`` and a newline to ``out``."""
    for piece in iter_json(value):
        out.write(piece)
    out.write("\n")
