"""A long series is a deep chain: every output of its lineage (``onmodel tree``, its JSON, the
web page, the export, ``Image.lineage``) works at 100,000 shots deep, without recursion and
without a query per generation.

The chains are written straight into the database in one transaction (making them shot by shot
would take hours); no test asserts on time, the machine is shared.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import event

from cli_inprocess import run_cli
from onmodel.export import export_session
from onmodel.handles import Session
from onmodel.lineage import Lineage, TreeNode, iter_json
from onmodel.presentation import Pages, session_view
from onmodel.status import ImageStatus
from onmodel.store.models import ImageRow
from onmodel.store.rows import insert_rows
from onmodel.studio import Studio

DEEP = 100_000
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
    return session, ids


def loads_deep(text: str) -> Any:
    """``json.loads`` of deeply nested JSON: the decoder recurses too, so it gets a thread
    with a big stack and a recursion limit to match."""
    result: list[Any] = []
    limit, size = sys.getrecursionlimit(), threading.stack_size()
    try:
        sys.setrecursionlimit(10 * DEEP)
        threading.stack_size(1 << 30)
        worker = threading.Thread(target=lambda: result.append(json.loads(text)))
        worker.start()
        worker.join(600)
    finally:
        sys.setrecursionlimit(limit)
        threading.stack_size(size)
    (parsed,) = result
    return parsed


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
def test_tree_json_of_a_100000_deep_chain(
    deep: tuple[Session, list[int]], isolated_home: Path
) -> None:
    session, ids = deep
    done = run_cli(isolated_home, "tree", session.slug, "--json")
    assert done.code == 0, done.stderr
    tree = loads_deep(done.stdout)
    assert list(chain_ids(tree)) == ids
    assert tree["kind"] == "anchor" and tree["children"][0]["label"] == f"step {ids[1]}"


@pytest.mark.slow  # 100,000 rows built and drawn: seconds, not milliseconds
def test_tree_text_of_a_100000_deep_chain(
    deep: tuple[Session, list[int]], isolated_home: Path
) -> None:
    """A straight series is one column: one line per image, no guides, none indented."""
    session, ids = deep
    done = run_cli(isolated_home, "tree", session.slug)
    assert done.code == 0, done.stderr
    title, *lines = done.stdout.splitlines()
    assert "Rin" in title
    assert len(lines) == DEEP
    assert lines[0].startswith(f"#{ids[0]} ✓ anchor: anchor")
    assert lines[-1] == f"#{ids[-1]} ✓ shot: step {ids[-1]} preview"


@pytest.mark.slow  # 100,000 rows built and drawn: seconds, not milliseconds
def test_the_session_page_of_a_100000_deep_chain(
    deep: tuple[Session, list[int]], studio: Studio
) -> None:
    session, ids = deep

    class Links:
        def file(self, image: Any) -> None:
            return None

        def thumb(self, image: Any, size: int) -> None:
            return None

        def page(self, image: Any) -> str:
            return f"/images/{image.id}"

        def parent(self, parent_id: int) -> None:
            return None

    view = session_view(session, Links())
    html = Pages().render_macro("web/_gallery.html.j2", "lineage", view, "web")
    assert html.count('<li class="node') == DEEP
    assert html.count('<ol class="chain">') == 1 and html.count("</ol>") == 1
    assert f'data-image-id="{ids[-1]}" data-parent-id="{ids[-2]}"' in html


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
        conn.exec_driver_sql("UPDATE image SET parent_id = ? WHERE id = ?", (ids[-1], ids[0]))
    assert [i.id for i in studio.image(ids[-1]).lineage()] == ids


@pytest.mark.slow  # 100,000 rows built and drawn: seconds, not milliseconds
def test_export_of_a_deep_chain(studio: Studio, tmp_path: Path) -> None:
    session, ids = build_chain(studio, EXPORT_DEEP)
    result = export_session(studio, session, tmp_path / "out")
    assert result.images == EXPORT_DEEP
    series = json.loads((tmp_path / "out" / "series.json").read_text(encoding="utf-8"))
    records = {record["id"]: record for record in series["images"]}
    assert records[ids[-1]]["lineage"] == ids
    assert series["tree"]["children"][str(ids[-2])] == [ids[-1]]
    html = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert html.count('<li class="node') == EXPORT_DEEP


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
    lineage = Lineage([root])
    assert [i.id for i in lineage.ancestors(DEEP - 1)] == list(range(DEEP - 1))
    assert lineage.depth(DEEP - 1) == DEEP - 1 and lineage.children(5)[0].id == 6
    found = lineage.find(7)
    assert found is not None and found.image.id == 7 and lineage.find(DEEP) is None


def test_forks_are_laid_out_as_columns_that_open_and_close() -> None:
    """0 → 1 → {2 → {3, 4}, 5}: the rows say where each column opens and what ends after it."""
    images = [SimpleNamespace(id=i) for i in range(6)]
    nodes = [TreeNode(image) for image in images]  # type: ignore[arg-type]
    nodes[0].children = [nodes[1]]
    nodes[1].children = [nodes[2], nodes[5]]
    nodes[2].children = [nodes[3], nodes[4]]
    rows = Lineage([nodes[0]]).rows()
    layout = [
        (r.node.image.id, r.parent_id, r.depth, r.opens, r.last, r.forks, r.unwind) for r in rows
    ]
    assert layout == [
        (0, None, 0, True, True, False, 0),
        (1, 0, 0, False, True, True, 0),
        (2, 1, 1, True, False, True, 0),
        (3, 2, 2, True, False, False, 0),
        (4, 2, 2, True, True, False, 1),  # ends the fork at 2
        (5, 1, 1, True, True, False, 1),  # ends the fork at 1
    ]
    assert list(rows[4].unwound) == [1] and list(rows[5].unwound) == [0]


def test_iter_json_writes_what_json_dumps_writes() -> None:
    value = {"a": [1, 2.5, True, None, 'é\n"'], 1: {}, None: [], "nested": [[{"b": ()}]]}
    assert "".join(iter_json(value)) == json.dumps(value, indent=2, ensure_ascii=False)
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(ValueError, match="Circular"):
        "".join(iter_json(looped))
