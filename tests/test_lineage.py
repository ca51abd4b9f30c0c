"""A long series is a deep chain: every output of its lineage (``onmodel tree``, its JSON, the
web page, the export, ``Image.lineage``) works at 100,000 shots deep, without recursion and
without a query per generation.

The chains are written straight into the database in one transaction (making them shot by shot
would take hours); no test asserts on time, the machine is shared.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import event, text

from cli_inprocess import assert_refused_cleanly, run_cli
from onmodel.export import export_session
from onmodel.handles import Session
from onmodel.lineage import Fold, LineageIndex, TreeNode, iter_json
from onmodel.presentation import (
    CARDS_PER_PAGE,
    LINEAGE_LINES,
    LineageWindow,
    Pages,
    session_view,
)
from onmodel.status import ImageStatus
from onmodel.store import lineage as lineage_reads
from onmodel.store.models import ImageRow, SessionRow
from onmodel.store.rows import insert_rows, update_row
from onmodel.studio import Studio
from onmodel.web.app import GalleryApp

DEEP = 100_000
LONG_DRAWING = (
    "a 100,000-line drawing in Python, half a minute more on PostgreSQL; its reads run there"
    " in the 100,000-deep session page and one-query lineage tests"
)
EXPORT_DEEP = 5_000  # the export reads every image's references and writes a page per image


def build_chain(studio: Studio, depth: int) -> tuple[Session, list[int]]:
    """A session whose anchor has ``depth - 1`` shots below it, each made from the last."""
    character = studio.create_character("Rin", prompt="a girl with red hair", provider="preview")
    session = character.start_session(provider="preview")
    anchor = character.anchor
    assert anchor is not None
    ids = [anchor.id, *range(anchor.id + 1, anchor.id + depth)]
    rows = [
        {
            "id": image_id,
            "character_id": character.id,
            "session_id": session.id,
            "parent_id": parent_id,
            "kind": "shot",
            "status": ImageStatus.SUCCEEDED.value,
            "request": {"expression": f"step {image_id}"},
            "provider": "preview",
            "model": "",
        }
        for parent_id, image_id in itertools.pairwise(ids)
    ]
    with studio.engine.begin() as conn:
        insert_rows(conn, ImageRow, rows)
        update_row(conn, SessionRow, session.id, {"head_image_id": ids[-1]})
    return session, ids


def chain_ids(tree: dict[str, Any]) -> Iterator[int]:
    node: dict[str, Any] | None = tree
    while node is not None:
        yield node["id"]
        children = node["children"]
        assert len(children) <= 1
        node = children[0] if children else None


@pytest.fixture
def deep(studio: Studio) -> tuple[Session, list[int]]:
    return build_chain(studio, DEEP)


@pytest.mark.slow  # 100,000 rows built and drawn: seconds, not milliseconds
@pytest.mark.sqlite_only(LONG_DRAWING)
def test_tree_json_of_a_100000_deep_chain(
    deep: tuple[Session, list[int]], isolated_home: Path
) -> None:
    """Flat: every image once with its parent, so any JSON reader loads a chain 100,000
    deep (nested, it was too deep for jq and Python's json)."""
    session, ids = deep
    done = run_cli(isolated_home, "tree", session.slug, "--json")
    assert done.code == 0, done.stderr
    entries = json.loads(done.stdout)
    assert [e["id"] for e in entries] == ids
    assert [e["parent_id"] for e in entries] == [None, *ids[:-1]]
    assert entries[0]["kind"] == "anchor" and entries[1]["label"] == f"step {ids[1]}"


@pytest.mark.slow  # 100,000 rows built and drawn: seconds, not milliseconds
@pytest.mark.sqlite_only(LONG_DRAWING)
def test_tree_text_of_a_100000_deep_chain(
    deep: tuple[Session, list[int]], isolated_home: Path
) -> None:
    """A straight series is one column: one line per image, no guides, none indented; by
    default its middle is folded into one line that says how to open it."""
    session, ids = deep
    done = run_cli(isolated_home, "tree", session.slug, "--all")
    assert done.code == 0, done.stderr
    title, *lines = done.stdout.splitlines()
    assert "Rin" in title
    assert len(lines) == DEEP
    assert lines[0].startswith(f"#{ids[0]} ✓ anchor: anchor")
    assert lines[-1] == f"#{ids[-1]} ✓ shot: step {ids[-1]} preview ← head"
    done = run_cli(isolated_home, "tree", session.slug)
    title, root, fold, *near, summary = done.stdout.splitlines()
    assert root.startswith(f"#{ids[0]} ✓ anchor")
    assert fold.startswith(f"… {DEEP - 10:,} images folded (#{ids[1]} … #{ids[-10]})")
    assert fold.endswith(f"onmodel tree --from {ids[1]} --limit 40")
    assert [line.split()[0] for line in near] == [f"#{i}" for i in ids[-9:]]
    assert summary == f"10 of {DEEP:,} images shown; everything: onmodel tree {session.slug} --all"


@pytest.mark.slow  # 100,000 rows built and drawn: seconds, not milliseconds
def test_the_session_page_of_a_100000_deep_chain(
    deep: tuple[Session, list[int]], studio: Studio
) -> None:
    """The page shows the root and the head's neighbourhood, the middle folded into one line
    whose link opens it, and a page of cards: a few dozen lines, not 100,000; what the fold
    opens comes a page of lines at a time, the last ending at the head."""
    session, ids = deep
    session = studio.session(session.id)  # as a request reads it: the head moved since
    links = GalleryApp(studio).links
    macro = Pages().render_macro
    view = session_view(session, links)
    html = macro("web/_gallery.html.j2", "lineage", view, "web")
    assert len(html) < 50_000  # the whole chain drawn was 100 MB
    drawn = [int(i) for i in re.findall(r'<li class="node[^"]*" data-image-id="(\d+)"', html)]
    assert drawn == [ids[0], *ids[-9:]]
    assert f'href="?from={ids[1]}" title="Show these images">… {DEEP - 10:,} images folded' in html
    assert f'data-image-id="{ids[-1]}" data-parent-id="{ids[-2]}"' in html
    assert html.count('class="head-tag"') == 1
    assert [card.id for card in view.images] == ids[-CARDS_PER_PAGE:] and view.older

    opened = session_view(session, links, window=LineageWindow(start=ids[1]))
    assert [node.image.id for node in opened.lineage if node.image] == ids[1 : LINEAGE_LINES + 1]
    assert opened.more_lines
    last = -(-(DEEP - 1) // LINEAGE_LINES)
    end = session_view(session, links, window=LineageWindow(start=ids[1], page=last))
    assert end.lineage[-1].image is not None and end.lineage[-1].image.id == ids[-1]
    assert not end.more_lines
    html = macro("web/_gallery.html.j2", "lineage", end, "web")  # starts mid-column: reopens it
    assert html.count('<ol class="chain">') == 1 and html.count("</ol>") == 1


def test_image_lineage_is_one_query_at_any_depth(
    deep: tuple[Session, list[int]], studio: Studio
) -> None:
    _, ids = deep
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    last, third, anchor = (studio.image(ids[i]) for i in (-1, 2, 0))
    event.listen(studio.engine, "before_cursor_execute", count)
    try:
        assert [i.id for i in last.lineage()] == ids
        assert len(statements) == 1
        assert [i.id for i in third.lineage()] == ids[:3]
        assert len(statements) == 2
        assert [i.id for i in anchor.lineage()] == ids[:1]  # nothing above it: no query
        assert len(statements) == 2
    finally:
        event.remove(studio.engine, "before_cursor_execute", count)


def test_image_lineage_stops_at_a_parent_cycle(studio: Studio) -> None:
    """A damaged database whose parent links loop must not make the query recurse forever."""
    _, ids = build_chain(studio, 4)
    with studio.engine.begin() as conn:
        conn.execute(
            text("UPDATE image SET parent_id = :parent WHERE id = :id"),
            {"parent": ids[-1], "id": ids[0]},
        )
    assert [i.id for i in studio.image(ids[-1]).lineage()] == ids


@pytest.mark.slow  # 100,000 rows built and drawn: seconds, not milliseconds
def test_export_of_a_deep_chain(studio: Studio, tmp_path: Path) -> None:
    session, ids = build_chain(studio, EXPORT_DEEP)
    result = export_session(studio, session, tmp_path / "out")
    assert result.images == EXPORT_DEEP
    series = json.loads((tmp_path / "out" / "series.json").read_text(encoding="utf-8"))
    records = {record["id"]: record for record in series["images"]}
    assert len(records) == len(series["images"]) == EXPORT_DEEP  # each image once
    assert all(records[child]["parent_id"] == parent for parent, child in itertools.pairwise(ids))
    assert "lineage" not in records[ids[-1]]  # no ancestry per image: depth x images in all
    assert series["tree"]["children"][str(ids[-2])] == [ids[-1]]
    pages = [(tmp_path / "out" / name).read_text(encoding="utf-8") for name in result.pages]
    cards = [
        int(i) for html in pages for i in re.findall(r'class="card[^"]*"\s+id="image-(\d+)"', html)
    ]
    assert sorted(cards) == ids[1:]  # the anchor heads the first page; every shot is a card once
    # the lineage panel draws the head's neighbourhood, not 5,000 lines: the rest is a fold
    assert 0 < pages[0].count('<li class="node') < 100 and '<li class="fold"' in pages[0]
    assert f'<li class="node status-succeeded" data-image-id="{ids[-1]}"' in pages[0]


def fake_chain(depth: int) -> TreeNode:
    root = node = TreeNode(SimpleNamespace(id=0, kind="anchor", status="succeeded", label="a"))  # type: ignore[arg-type]
    for i in range(1, depth):
        child = TreeNode(SimpleNamespace(id=i, kind="shot", status="failed", label=f"s{i}"))  # type: ignore[arg-type]
        node.children.append(child)
        node = child
    return root


def test_a_deep_tree_node_walks_and_nests_without_recursion() -> None:
    root = fake_chain(DEEP)
    assert [i.id for i in root.walk()] == list(range(DEEP))
    nested = root.to_dict()
    assert list(chain_ids(nested)) == list(range(DEEP))
    assert repr(root).startswith("TreeNode(image=")
    lineage = LineageIndex([(i, i - 1 if i else None) for i in range(DEEP)])
    assert lineage.ancestors(DEEP - 1) == list(range(DEEP - 1))
    assert lineage.children(5) == [6] and lineage.sizes()[0] == DEEP
    assert 7 in lineage and DEEP not in lineage
    walked = list(lineage.view().walk())
    assert walked[:2] == [(None, 0), (0, 1)] and len(walked) == DEEP


def test_forks_are_laid_out_as_columns_that_open_and_close() -> None:
    """0 → 1 → {2 → {3, 4}, 5}: the biggest branch (the newest of equals) continues the
    column, the others are drawn before it, indented, and the rows say where each opens and
    what ends after it."""
    index = LineageIndex([(0, None), (1, 0), (2, 1), (3, 2), (4, 2), (5, 1)])
    rows = list(index.rows())
    layout = [(r.key, r.parent_id, r.depth, r.opens, r.forks, r.leaf, r.closes_fork) for r in rows]
    assert layout == [
        (0, None, 0, True, False, False, False),
        (1, 0, 0, False, True, False, False),
        (5, 1, 1, True, False, True, True),  # the fork at 1 has no other branch
        (2, 1, 0, False, True, False, False),  # 1's column goes on
        (3, 2, 1, True, False, True, True),
        (4, 2, 0, False, False, True, False),
    ]


def test_a_series_with_many_forks_stays_one_column() -> None:
    """Retakes off every shot of a long line do not push the line to the right."""
    links: list[tuple[int, int | None]] = [(i, i - 1 if i else None) for i in range(1000)]
    links += [(10_000 + i, i) for i in range(999)]  # a retake of every shot
    rows = list(LineageIndex(links).rows())
    assert len(rows) == len(links)
    assert max(r.depth for r in rows) == 1
    assert all(r.depth == 0 for r in rows if r.key < 999)  # 999 and its retake tie at the end


def test_iter_json_writes_what_json_dumps_writes() -> None:
    value = {"a": [1, 2.5, True, None, 'é\n"'], 1: {}, None: [], "nested": [[{"b": ()}]]}
    assert "".join(iter_json(value)) == json.dumps(value, indent=2, ensure_ascii=False)
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(ValueError, match="Circular"):
        "".join(iter_json(looped))


def branched() -> LineageIndex:
    """0 → 1 → … → 30 (the main line), with a branch 100 → 101 → 102 off 5, a branch 200
    off 5 too, a branch 300 off 28 and, below 30 (the head), 31 and 32 side by side."""
    links: list[tuple[int, int | None]] = [(i, i - 1 if i else None) for i in range(31)]
    links += [(100, 5), (101, 100), (102, 101), (200, 5), (300, 28), (31, 30), (32, 30)]
    return LineageIndex(links)


def test_the_default_view_folds_the_middle_and_the_side_branches() -> None:
    """Around the head: the root, a fold for the middle of the line, the last images down to
    the head with the branches off them folded, and what was made from the head."""
    index = branched()
    keys = [row.key for row in index.around(30, context=3).rows()]
    run, side = keys[1], keys[4]
    assert keys[0] == 0 and [keys[2], keys[3], keys[5], keys[6], keys[7], keys[8]] == [
        27,
        28,
        29,
        30,
        31,
        32,
    ]
    assert isinstance(run, Fold) and isinstance(side, Fold)
    # 1..26 on the line, and the two branches off 5 (four images) hanging from it
    assert (run.kind, run.first_id, run.last_id, run.images, run.branches) == (
        "run",
        1,
        26,
        30,
        2,
    )
    assert (side.kind, side.parent_id, side.images, side.open_id) == ("branches", 28, 1, 300)
    assert run.describe() == "… 30 images folded (#1 … #26, 2 branching off)"
    assert side.describe() == "… 1 branch folded (1 images)"
    assert sum(isinstance(k, int) for k in keys) + run.images + side.images == len(index)


def test_a_view_from_an_image_folds_what_is_deeper_or_over_the_limit() -> None:
    index = branched()
    keys = [row.key for row in index.from_image(5, depth=2).rows()]
    assert [k for k in keys if isinstance(k, int)] == [5, 100, 101, 200, 6, 7]  # branches first
    folds = [k for k in keys if isinstance(k, Fold)]
    assert [(f.parent_id, f.first_id, f.images) for f in folds] == [(101, 102, 1), (7, 8, 26)]
    limited = [row.key for row in index.from_image(0, limit=4).rows()]
    assert [k for k in limited if isinstance(k, int)] == [0, 1, 2, 3]
    (fold,) = [k for k in limited if isinstance(k, Fold)]
    assert fold.images == len(index) - 4
    assert list(index.window(None, everything=True).rows()) == list(index.rows())


def test_lineage_reads_are_one_statement_each_at_any_size(studio: Studio) -> None:
    """A session's links (with the images of another session it branched from), an image's
    ancestors, descendants and children: one SQL statement each, never one per image."""
    session, ids = build_chain(studio, 300)
    other = studio.start_session(session.character, provider="preview")
    branch_from = ids[100]
    with studio.engine.begin() as conn:
        insert_rows(
            conn,
            ImageRow,
            [
                {
                    "id": 10_000 + i,
                    "character_id": session.character.id,
                    "session_id": other.id,
                    "parent_id": branch_from if i == 0 else 10_000 + i - 1,
                    "kind": "shot",
                    "status": ImageStatus.SUCCEEDED.value,
                    "request": {"pose": f"p{i}"},
                    "provider": "preview",
                    "model": "",
                }
                for i in range(5)
            ],
        )
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(studio.engine, "before_cursor_execute", count)
    try:
        index = other.lineage()
        assert len(statements) == 3  # its character (the anchor), its rows, the images above
        # the other session's five shots hang from the first session's image, traced up to
        # the anchor, so the drawing has no hole
        assert index.order()[:3] == ids[:3] and index.ancestors(10_004)[-5:] == [
            branch_from,
            *range(10_000, 10_004),
        ]
        assert len(index) == 101 + 5
        statements.clear()
        assert lineage_reads.ancestor_ids(studio.engine, 10_004) == [
            *ids[:101],
            *range(10_000, 10_004),
        ]
        assert lineage_reads.descendant_count(studio.engine, ids[100]) == 199 + 5
        assert lineage_reads.child_counts(studio.engine, [ids[100], ids[101], ids[-1]]) == {
            ids[100]: 2,
            ids[101]: 1,
            ids[-1]: 0,
        }
        assert len(statements) == 3
    finally:
        event.remove(studio.engine, "before_cursor_execute", count)


def test_lineage_reads_end_on_a_parent_cycle(studio: Studio) -> None:
    """Parent links that loop (a damaged database) end every recursive read."""
    _, ids = build_chain(studio, 4)
    with studio.engine.begin() as conn:
        conn.execute(
            text("UPDATE image SET parent_id = :parent WHERE id = :id"),
            {"parent": ids[-1], "id": ids[0]},
        )
    assert lineage_reads.ancestor_ids(studio.engine, ids[-1]) == ids[:-1]
    assert lineage_reads.descendant_count(studio.engine, ids[0]) == 4  # itself, via the loop


def test_tree_options_open_a_fold_and_bound_the_drawing(
    studio: Studio, isolated_home: Path
) -> None:
    session, ids = build_chain(studio, 200)
    done = run_cli(isolated_home, "tree", session.slug, "--from", str(ids[10]), "--limit", "5")
    assert done.code == 0, done.stderr
    _, *lines, summary = done.stdout.splitlines()
    assert [line.split()[0] for line in lines[:5]] == [f"#{i}" for i in ids[10:15]]
    assert (
        lines[5]
        == f"… 1 branch folded ({200 - 15} images) — onmodel tree --from {ids[15]} --limit 40"
    )
    assert summary.startswith("5 of 200 images shown")
    done = run_cli(isolated_home, "tree", session.slug, "--depth", "2", "--json")
    *shown, fold = json.loads(done.stdout)
    assert [(e["id"], e["parent_id"]) for e in shown] == [
        (ids[0], None),
        (ids[1], ids[0]),
        (ids[2], ids[1]),
    ]
    assert (fold["folded"], fold["images"], fold["open_id"], fold["parent_id"]) == (
        "branches",
        197,
        ids[3],
        ids[2],
    )
    full = json.loads(run_cli(isolated_home, "tree", session.slug, "--json").stdout)
    assert [e["id"] for e in full] == ids  # --json alone: the whole lineage, nothing folded


def test_tree_refuses_what_it_cannot_show(studio: Studio, isolated_home: Path) -> None:
    session, _ = build_chain(studio, 5)
    other = studio.create_character("Ann", prompt="a boy", provider="preview")
    for args in (
        ("--from", "99999"),  # no such image
        ("--from", str(other.anchor_image_id)),  # another lineage's image
        ("--depth", "-1"),
        ("--limit", "0"),
        ("--from", "abc"),
    ):
        assert_refused_cleanly(run_cli(isolated_home, "tree", session.slug, *args))
