"""A session's lineage: its shape (:class:`LineageIndex`, ids and links only), how it is laid
out as lines (:func:`layout`), the windows a view shows of it (:meth:`LineageIndex.around`,
:meth:`LineageIndex.from_image`, with what they leave out as :class:`Fold` lines), and JSON
written for any depth. The CLI tree, the web pages and the export all draw from here.

A long series is a deep chain (each shot continues the last), so nothing here recurses: every
walk keeps its own stack, and a 100,000-deep chain costs what 100,000 siblings would. Python's
recursion limit stops recursive code near a thousand levels, and that includes ``json.dumps``
of nested dicts, hence :func:`iter_json`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TextIO, TypeVar

from onmodel.kinds import SET

if TYPE_CHECKING:
    from onmodel.handles import Character, Image
    from onmodel.studio.members import ShotCast

JSON_INDENT = 2
Loaded = TypeVar("Loaded")
Item = TypeVar("Item")
# Indentation stops growing here: fully indented, a 100,000-deep chain's JSON would be about
# 100 GB of spaces (quadratic in the depth). Any whitespace is valid JSON, and trees up to this
# deep print exactly as ``json.dumps(indent=2)`` would.
MAX_JSON_INDENT_LEVELS = 32


@dataclass(eq=False)
class TreeNode:
    """One image and the images made from it: a whole lineage as handles, for library users
    who want it all in memory. The CLI, the web pages and the export read a
    :class:`LineageIndex` instead and load only the images they show.

    Compared by identity and shown without its children: the generated ``__eq__`` and
    ``__repr__`` would recurse down the whole chain.
    """

    image: Image
    children: list[TreeNode] = field(default_factory=list, repr=False)

    def nodes(self) -> Iterator[TreeNode]:
        """This node and every node below it, depth-first, parents before children."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def walk(self) -> list[Image]:
        """Every image, in :meth:`nodes` order."""
        return [node.image for node in self.nodes()]

    def to_dict(self) -> dict[str, Any]:
        """The whole tree as nested dicts (``children`` inside ``children``), built top-down
        without recursion; for library users (``onmodel tree --json`` is flat, see there)."""
        top = {**node_fields(self.image), "children": []}
        stack: list[tuple[TreeNode, dict[str, Any]]] = [(self, top)]
        while stack:
            node, entry = stack.pop()
            for child in node.children:
                made = {**node_fields(child.image), "children": []}
                entry["children"].append(made)
                stack.append((child, made))
        return top


def node_fields(image: Image) -> dict[str, Any]:
    """What ``onmodel tree --json`` says of each image, besides its children."""
    return {"id": image.id, "kind": image.kind, "status": image.status, "label": image.label}


@dataclass(frozen=True)
class Fold:
    """Images a view leaves out, drawn as one line where they hang.

    ``run``: the middle of a straight line of shots (with whatever branches off it), between
    two images the view shows. ``branches``: one or more whole branches below ``parent_id``.
    A view started at ``open_id`` shows them.
    """

    kind: Literal["run", "branches"]
    parent_id: int  # the shown image they hang from
    first_id: int  # the first image left out
    last_id: int  # a run's last image left out (for branches, the first branch's root)
    images: int
    branches: int  # branches folded (for a run: the side branches inside it)

    @property
    def open_id(self) -> int:
        """Where a view that shows these images starts."""
        return self.first_id if self.kind == "run" or self.branches == 1 else self.parent_id

    def describe(self) -> str:
        """One line of plain text for the fold, the same in the CLI, the pages and the export."""
        if self.kind == "run":
            side = f", {self.branches:,} branching off" if self.branches else ""
            return f"… {self.images:,} images folded (#{self.first_id} … #{self.last_id}{side})"
        noun = "branch" if self.branches == 1 else "branches"
        return f"… {self.branches:,} {noun} folded ({self.images:,} images)"


Key = int | Fold  # a line of a view: an image id, or what the view left out


@dataclass(frozen=True)
class Row:
    """One line of a lineage as drawn. A line's last child continues its column; the other
    children start branches, drawn (indented one level) before the column goes on. So a
    series stays one column however many retakes and variations branch off it, and the
    indentation grows with branches of branches only, never with the length of the series
    (indenting the main line at every fork made 100,000 lines cost 100,000 × forks).
    ``key`` is an image id, or a :class:`Fold` in a view.
    """

    key: Key
    parent_id: int | None  # the image it hangs from in this drawing
    depth: int  # branches it is inside: how far it is indented
    opens: bool  # the first of its column: a root, or the first line of a branch
    forks: bool  # branches start below it, before its column goes on
    leaf: bool  # nothing is drawn below it: its column ends here
    closes_fork: bool  # its column is the last branch of a fork, which so ends here too


def layout(roots: Sequence[Key], children: Callable[[Key], Sequence[Key]]) -> Iterator[Row]:
    """Every node under ``roots`` as drawn (see :class:`Row`), depth-first, streamed: a line
    costs its own children, whatever the depth."""
    # node, parent id, depth, opens, closes: whether its column's end closes a fork
    stack: list[tuple[Key, int | None, int, bool, bool]] = [
        (root, None, 0, True, False) for root in reversed(roots)
    ]
    while stack:
        node, parent_id, depth, opens, closes = stack.pop()
        below = children(node)
        yield Row(
            key=node,
            parent_id=parent_id,
            depth=depth,
            opens=opens,
            forks=len(below) > 1,
            leaf=not below,
            closes_fork=closes and not below,
        )
        if not below:
            continue
        key = node if isinstance(node, int) else node.parent_id
        *branches, following = below
        stack.append((following, key, depth, False, closes))
        stack.extend(
            (child, key, depth + 1, True, i == len(branches) - 1)
            for i, child in reversed(list(enumerate(branches)))
        )


@dataclass(frozen=True)
class View:
    """What one output shows of a lineage: its top lines and, for each line, the lines drawn
    below it (images, and :class:`Fold` lines for what it leaves out). Nothing is loaded:
    walking a view yields ids, and the caller loads the images a chunk at a time."""

    roots: list[Key]
    children: Callable[[Key], Sequence[Key]]

    def rows(self) -> Iterator[Row]:
        """Every line as drawn, streamed."""
        return layout(self.roots, self.children)

    def walk(self) -> Iterator[tuple[Key | None, Key]]:
        """``(the line it hangs from, key)`` of every line, depth-first, children in the
        order they were made (folds last): the order data is written in, not drawn in."""
        stack: list[tuple[Key | None, Key]] = [(None, root) for root in reversed(self.roots)]
        while stack:
            parent, key = stack.pop()
            yield parent, key
            made = sorted(self.children(key), key=_made_order, reverse=True)
            stack.extend((key, child) for child in made)


def _made_order(key: Key) -> tuple[int, int]:
    return (1, key.first_id) if isinstance(key, Fold) else (0, key)


class LineageIndex:
    """A lineage's shape: image ids and parent links, and nothing else.

    A 100,000-image series is a few megabytes of ids, read in one query; every view (the
    CLI's tree, the web pages, the export) is laid out here and then loads only the images it
    shows. Children are in id order (the order they were made). Images whose parent is not in
    the index are roots; given ``root_id``, the other roots hang from it, so a session drawn
    from its character's anchor is one tree.
    """

    def __init__(
        self,
        links: Iterable[tuple[int, int | None]],
        root_id: int | None = None,
        *,
        join_roots: bool = True,
    ) -> None:
        self._parent: dict[int, int] = {}
        self._children: dict[int, list[int]] = {}
        pairs = sorted(links)
        known = {image_id for image_id, _ in pairs}
        roots: list[int] = []
        for image_id, parent_id in pairs:
            if parent_id is not None and parent_id in known and parent_id != image_id:
                self._parent[image_id] = parent_id
                self._children.setdefault(parent_id, []).append(image_id)
            else:
                roots.append(image_id)
        self._roots = set(roots)
        if join_roots:
            roots = self._join_roots(roots, root_id if root_id in known else None)
        self.roots = roots
        self._order: list[int] | None = None
        self._sizes: dict[int, int] | None = None

    def _join_roots(self, roots: list[int], root_id: int | None) -> list[int]:
        """Hang every root from ``root_id`` (or the first root), and drop what a cycle of
        parent links left unreachable from any root (a damaged database)."""
        if len(roots) > 1:
            top = root_id if root_id in roots else roots[0]
            for other in roots:
                if other != top:
                    self._parent[other] = top
                    self._children.setdefault(top, []).append(other)
            self._children[top].sort()
            roots = [top]
        return roots

    def __len__(self) -> int:
        return len(self.order())

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._parent or image_id in self._roots

    def parent(self, image_id: int) -> int | None:
        return self._parent.get(image_id)

    def children(self, key: Key) -> list[int]:
        """An image's children in id order (a fold's: none)."""
        return self._children.get(key, []) if isinstance(key, int) else []

    def order(self) -> list[int]:
        """Every id reachable from a root, depth-first, parents before children."""
        if self._order is None:
            found: list[int] = []
            stack = list(reversed(self.roots))
            while stack:
                image_id = stack.pop()
                found.append(image_id)
                stack.extend(reversed(self._children.get(image_id, ())))
            self._order = found
        return self._order

    def sizes(self) -> dict[int, int]:
        """Images in each subtree, the image itself included: children finish first when
        the depth-first order is read backwards."""
        if self._sizes is None:
            sizes: dict[int, int] = {}
            for image_id in reversed(self.order()):
                sizes[image_id] = 1 + sum(sizes[c] for c in self._children.get(image_id, ()))
            self._sizes = sizes
        return self._sizes

    def ancestors(self, image_id: int) -> list[int]:
        """The image's ancestors here, oldest first."""
        found: list[int] = []
        key = self._parent.get(image_id)
        while key is not None:
            found.append(key)
            key = self._parent.get(key)
        found.reverse()
        return found

    def with_depths(self, start: int | None = None) -> Iterator[tuple[int, int]]:
        """``(id, generations below start)`` of every image under ``start`` (or every root),
        depth-first."""
        stack = [(start, 0)] if start is not None else [(r, 0) for r in reversed(self.roots)]
        while stack:
            image_id, depth = stack.pop()
            yield image_id, depth
            stack.extend((c, depth + 1) for c in reversed(self._children.get(image_id, ())))

    def view(self, start: int | None = None, *, head: int | None = None) -> View:
        """Every image under ``start`` (or every image), nothing folded; among equal branches
        the one that leads to ``head`` continues the column."""
        path = self._path_to(head)
        return View(
            [start] if start is not None else list(self.roots),
            lambda key: self.drawn_children(key, path),
        )

    def drawn_children(self, key: Key, path: frozenset[int] = frozenset()) -> list[int]:
        """An image's children as drawn: the one with the most images below it last, to
        continue its column (of equals, the one on ``path``, the way to the session's head,
        else the newest: the picked take of a retake, not a later sibling); the others in
        the order they were made."""
        children = self.children(key)
        if len(children) < 2:
            return children
        size = self.sizes()
        following = max(reversed(children), key=lambda child: (size[child], child in path))
        return [*(c for c in children if c != following), following]

    def _path_to(self, head: int | None) -> frozenset[int]:
        if head is None or head not in self:
            return frozenset()
        return frozenset([*self.ancestors(head), head])

    def rows(self, start: int | None = None) -> Iterator[Row]:
        """Every image under ``start`` (or every image) as drawn, streamed."""
        return self.view(start).rows()

    def prune(self, keep: Callable[[int], bool]) -> LineageIndex:
        """The lineage without the images ``keep`` rejects; their children move up to the
        nearest kept ancestor (or become roots), so a filtered export still reads as one
        lineage."""
        links: list[tuple[int, int | None]] = []
        kept_above: dict[int, int | None] = {}
        for image_id in self.order():
            parent = self._parent.get(image_id)
            above = (parent if keep(parent) else kept_above[parent]) if parent is not None else None
            kept_above[image_id] = above
            if keep(image_id):
                links.append((image_id, above))
        return LineageIndex(links, join_roots=False)

    # ------------------------------------------------------------------ views

    def window(
        self,
        head: int | None,
        *,
        start: int | None = None,
        depth: int | None = None,
        limit: int | None = None,
        everything: bool = False,
    ) -> View:
        """The view ``onmodel tree`` and the session page show: by default the neighbourhood
        of ``head`` (or of the newest image, without one); from ``start`` (or the root) when
        any of ``start``, ``depth``, ``limit`` or ``everything`` is given."""
        if start is not None and start not in self:
            raise KeyError(start)
        if start is None and depth is None and limit is None and not everything:
            newest = head if head in self else max(self.order(), default=None)
            if newest is None:
                return View([], self.children)
            return self.around(newest)
        if start is None and not self.roots:
            return View([], self.children)
        return self.from_image(
            start if start is not None else self.roots[0], depth=depth, limit=limit, head=head
        )

    def around(self, image_id: int, *, context: int = 8, limit: int = 40) -> View:
        """What ``onmodel tree`` shows by default: the line from the root down to
        ``image_id`` (the session's head) with its middle folded beyond ``context`` images,
        the branches off that line folded, and up to ``limit`` images below it."""
        path = [*self.ancestors(image_id), image_id]
        kept = {path[0], *path[-(context + 1) :]}
        below = self._first_below(image_id, limit=limit + 1)  # the image itself is counted
        shown = kept | below
        on_path = {a: b for a, b in itertools.pairwise(path)}
        gap = [p for p in path if p not in kept]
        runs: dict[int, Fold] = {}
        after = image_id
        if gap:
            after = path[path.index(gap[-1]) + 1]
            size = self.sizes()
            runs[path[0]] = Fold(
                kind="run",
                parent_id=path[0],
                first_id=gap[0],
                last_id=gap[-1],
                images=size[gap[0]] - size[after],
                branches=sum(len(self.children(g)) - 1 for g in gap),
            )

        def children(key: int | Fold) -> list[int | Fold]:
            if isinstance(key, Fold):
                return [after] if key.kind == "run" else []
            if key in runs:
                side = self._folded(key, [c for c in self.children(key) if c != gap[0]])
                return [*side, runs[key]]
            if key in on_path and key != image_id:
                following = on_path[key]
                side = self._folded(key, [c for c in self.children(key) if c != following])
                return [*side, following]
            return self._shown_children(key, shown)

        return View([path[0]], children)

    def from_image(
        self,
        start: int,
        *,
        depth: int | None = None,
        limit: int | None = None,
        head: int | None = None,
    ) -> View:
        """``start`` and the images below it, down to ``depth`` generations and at most
        ``limit`` images (depth-first); what is cut off is folded where it hangs. The way to
        ``head`` continues the column where branches are equal."""
        if depth is None and limit is None:
            return self.view(start, head=head)
        path = self._path_to(head)
        shown: set[int] = set()
        for image_id, generation in self.with_depths(start):
            if limit is not None and len(shown) >= limit:
                break
            if depth is None or generation <= depth:
                shown.add(image_id)
        return View([start], lambda key: self._shown_children(key, shown, path))

    def _first_below(self, image_id: int, *, limit: int) -> set[int]:
        found: set[int] = set()
        for key, _ in self.with_depths(image_id):
            if len(found) >= limit:
                break
            found.add(key)
        return found

    def _shown_children(
        self, key: int | Fold, shown: set[int], path: frozenset[int] = frozenset()
    ) -> list[int | Fold]:
        """A shown image's children that are shown, with a fold for the others drawn first
        (the column goes on with a shown child, if any)."""
        if isinstance(key, Fold):
            return []
        children = self.drawn_children(key, path)
        visible: list[int | Fold] = [c for c in children if c in shown]
        return self._folded(key, [c for c in children if c not in shown]) + visible

    def _folded(self, parent_id: int, branches: list[int]) -> list[int | Fold]:
        if not branches:
            return []
        size = self.sizes()
        return [
            Fold(
                kind="branches",
                parent_id=parent_id,
                first_id=branches[0],
                last_id=branches[0],
                images=sum(size[b] for b in branches),
                branches=len(branches),
            )
        ]


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


def with_images(
    items: Iterable[Item],
    key: Callable[[Item], Key],
    load: Callable[[list[int]], Mapping[int, Loaded]],
    chunk: int = 500,
) -> Iterator[tuple[Item, Loaded | None]]:
    """Each item (a :class:`Row`, a step of :meth:`View.walk`) with the image of its
    ``key`` (``None`` for a fold, or an image that has gone), loaded ``chunk`` ids per call
    to ``load``: an output streams a lineage of any size in bounded memory, in a few hundred
    queries at most."""
    source = iter(items)
    while batch := list(itertools.islice(source, chunk)):
        keys = [key(item) for item in batch]
        found = load([k for k in keys if isinstance(k, int)])
        for item, k in zip(batch, keys, strict=True):
            yield item, found.get(k) if isinstance(k, int) else None


def fold_fields(fold: Fold) -> dict[str, Any]:
    """A fold as ``onmodel tree --json`` and the web pages describe it."""
    return {
        "folded": fold.kind,
        "images": fold.images,
        "branches": fold.branches,
        "first_id": fold.first_id,
        "last_id": fold.last_id,
        "open_id": fold.open_id,
    }


# --------------------------------------------------------------------------- who is in a picture


def image_casts(images: Iterable[Image], known: Iterable[Character] = ()) -> dict[int, ShotCast]:
    """Who is in each of ``images``, by image id: its figures in the order their anchors were
    sent, then its set.

    Read for all of them at once, never once per image: ``image_cast`` for the pictures of
    several (one query per chunk), then everyone not ``known`` already (the caller's session's
    lead, say) in one more. A picture whose request names neither a cast nor a set shows its
    own character alone (the planner records a shot of the lead so, and anchors and views
    are of one character): what most images of a series are, read from nothing but the
    image, so a page of them costs no query at all when their character is known.
    """
    from onmodel.store.cast import cast_of
    from onmodel.studio.members import ShotCast

    shown = {image.id: image for image in images}
    if not shown:
        return {}
    studio = next(iter(shown.values())).studio
    several = [key for key, image in shown.items() if image.request.cast or image.request.set]
    ids = {key: [image.character_id] for key, image in shown.items()}
    ids.update(cast_of(studio.engine, several) if several else {})
    members = {member.id: member for member in known}
    if wanted := {each for found in ids.values() for each in found} - members.keys():
        members.update(studio.lookups.characters_by_id(wanted))
    casts: dict[int, ShotCast] = {}
    for key, found in ids.items():
        everyone = [members[each] for each in found if each in members]
        casts[key] = ShotCast(
            figures=tuple(member for member in everyone if member.kind != SET),
            set=next((member for member in everyone if member.kind == SET), None),
        )
    return casts


class Member(Protocol):
    """Someone (or somewhere) in a picture, as a cast is worded: a :class:`Character`, or a
    plan's ``CastMember``."""

    @property
    def id(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...


def is_ensemble_of(everyone: Sequence[Member], own_id: int) -> bool:
    """Whether a picture of ``everyone`` (figures, then the set) shows anyone or anywhere
    besides its own character (a shot's lead, an anchor's character): the pictures whose
    cast is worth a line of its own."""
    return [member.id for member in everyone] not in ([], [own_id])


def member_name(member: Member) -> str:
    """``Mia``, ``Max (creature)``, ``Bedroom (set)``: a name, and its kind unless a
    character's."""
    return member.name if member.kind == "character" else f"{member.name} ({member.kind})"


def cast_text(everyone: Sequence[Member]) -> str:
    """``Mia, Rin, Max (creature) · set: Bedroom``: who is in a picture (figures in order,
    then the set), as ``show``, a dry run, a card and an image page say it."""
    figures = ", ".join(member_name(m) for m in everyone if m.kind != SET)
    where = [f"set: {m.name}" for m in everyone if m.kind == SET]
    return " · ".join([figures, *where] if figures else where)


def cast_mark(everyone: Sequence[Member], own_id: int) -> str:
    """What a line of a tree adds about a picture of several: ``+ Rin, Max · in Bedroom``
    (who joined its own character, and where), ``only Rin`` (a shot that left its lead
    out); nothing for a picture of its own character alone."""
    if not is_ensemble_of(everyone, own_id):
        return ""
    figures = [member for member in everyone if member.kind != SET]
    others = ", ".join(member.name for member in figures if member.id != own_id)
    joined = any(member.id == own_id for member in figures)
    who = (f"+ {others}" if joined else f"only {others}") if others else ""
    where = [f"in {member.name}" for member in everyone if member.kind == SET]
    return " · ".join(part for part in (who, *where) if part)


def cast_dicts(cast: ShotCast) -> list[dict[str, str]]:
    """Everyone in a picture as JSON, in order (figures, then the set): ``show --json``,
    the web's JSON and ``series.json`` list it so."""
    return [
        {"slug": member.slug, "name": member.name, "kind": member.kind} for member in cast.everyone
    ]
