"""The shot-list format: expansion, keys, and errors that name the file and the line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from onmodel.batch import (
    SessionDefaults,
    ShotListError,
    expand,
    json_schema,
    load_shot_list,
    parse_shot_list,
)
from onmodel.batch.spec import ShotList

SESSION = SessionDefaults(
    slug="week", provider="preview", model="gpt-image-2", params={"size": "1024x1024"}
)


def parse(text: str, tmp_path: Path | None = None) -> list[dict[str, object]]:
    source = tmp_path / "list.yaml" if tmp_path else None
    loaded = parse_shot_list(textwrap.dedent(text), source=source, label="list.yaml")
    return [s.to_dict() for s in expand(loaded, SESSION).shots]


def problems(text: str) -> list[str]:
    with pytest.raises(ShotListError) as caught:
        parse_shot_list(textwrap.dedent(text), label="list.yaml")
    return [p.describe() for p in caught.value.problems]


# ---------------------------------------------------------------------------------- expansion


def test_matrix_expands_every_combination_in_a_stable_order() -> None:
    shots = parse(
        """
        matrices:
          - axes:
              pose: [standing, sitting, running]
              outfit: [sportswear, uniform]
              expression: [happy, sad]
              scene: [park, beach]
        """
    )
    assert len(shots) == 3 * 2 * 2 * 2
    assert shots[0]["request"] == {
        "pose": "standing",
        "outfit": "sportswear",
        "expression": "happy",
        "scene": "park",
    }
    assert shots[1]["request"]["scene"] == "beach"  # type: ignore[index]
    assert shots[-1]["request"]["pose"] == "running"  # type: ignore[index]
    assert len({s["key"] for s in shots}) == len(shots)
    assert all(s["line"] == 3 for s in shots)


def test_layers_defaults_matrix_override_and_shot(tmp_path: Path) -> None:
    shots = parse(
        """
        defaults:
          scene: studio
          quality: low
          params: {background: opaque}
        shots:
          - expression: crying
          - expression: laughing
            scene: ""
            size: 1536x1024
            params: {quality: high}
        matrices:
          - name: outfits
            outfit: cream hoodie
            axes:
              pose: [standing, running]
            overrides:
              - when: {pose: running}
                scene: track
                quality: medium
        """
    )
    crying, laughing, standing, running = shots
    assert crying["request"] == {"expression": "crying", "scene": "studio"}
    assert crying["params"] == {"size": "1024x1024", "quality": "low", "background": "opaque"}
    assert laughing["request"] == {"expression": "laughing"}  # "" clears the default scene
    assert laughing["params"] == {"size": "1536x1024", "quality": "high", "background": "opaque"}
    assert standing["request"] == {"pose": "standing", "outfit": "cream hoodie", "scene": "studio"}
    assert running["request"]["scene"] == "track"  # type: ignore[index]
    assert running["params"]["quality"] == "medium"  # type: ignore[index]
    assert standing["label"] == "outfits: standing, cream hoodie, studio"
    assert running["source"] == "matrices[0] pose=running"


def test_exclude_and_repeat() -> None:
    shots = parse(
        """
        matrices:
          - axes: {outfit: [a, b], scene: [x, y]}
            exclude: [{outfit: b, scene: y}]
            repeat: 2
        """
    )
    combos = [(s["request"]["outfit"], s["request"]["scene"], s["variation"]) for s in shots]  # type: ignore[index]
    assert combos == [
        ("a", "x", 1),
        ("a", "x", 2),
        ("a", "y", 1),
        ("a", "y", 2),
        ("b", "x", 1),
        ("b", "x", 2),
    ]
    assert shots[1]["label"] == "a, x · take 2/2"


def test_keys_ignore_order_names_and_batch_but_follow_content(tmp_path: Path) -> None:
    one = parse("shots: [{pose: a, name: first}, {pose: b}]\n")
    two = parse("name: other\nshots: [{pose: b}, {pose: a}]\n")
    assert {s["key"] for s in one} == {s["key"] for s in two}
    changed = parse("shots: [{pose: a, quality: high}, {pose: b}]\n")
    assert changed[0]["key"] != one[0]["key"] and changed[1]["key"] == one[1]["key"]
    grown = parse("shots: [{pose: a, repeat: 3}]\n")
    assert grown[0]["key"] == one[0]["key"]  # variation 1 is the shot that already exists
    other_session = expand(
        parse_shot_list("shots: [{pose: a}]\n"),
        SessionDefaults(slug="other", provider="preview", model="gpt-image-2"),
    ).shots
    assert other_session[0].key != one[0]["key"]


def test_refs_enter_the_key_by_content(tmp_path: Path) -> None:
    ref = tmp_path / "ref.png"
    ref.write_bytes(b"one")
    text = "shots: [{pose: a, refs: [ref.png]}]\n"
    first = parse(text, tmp_path)
    ref.write_bytes(b"two")
    second = parse(text, tmp_path)
    assert first[0]["refs"] == [str(ref.resolve())]
    assert first[0]["key"] != second[0]["key"]


def test_duplicate_shots_run_once_with_a_warning() -> None:
    loaded = parse_shot_list(
        "shots:\n  - {pose: a}\nmatrices:\n  - axes: {pose: [a, b]}\n", label="list.yaml"
    )
    expansion = expand(loaded, SESSION)
    assert [s.request.pose for s in expansion.shots] == ["a", "b"]
    assert "line 4" in expansion.warnings[0] and "line 2" in expansion.warnings[0]


def test_yaml_anchors_live_under_x_keys() -> None:
    shots = parse(
        """
        x-base: &base {outfit: hoodie, quality: low}
        shots:
          - <<: *base
            pose: a
          - <<: *base
            outfit: jacket
        """
    )
    assert shots[0]["request"] == {"outfit": "hoodie", "pose": "a"}
    assert shots[1]["request"] == {"outfit": "jacket"}


# ---------------------------------------------------------------------------------- errors


def test_unknown_field_names_the_line_and_suggests() -> None:
    found = problems(
        """
        shots:
          - pose: a
          - posee: b
        """
    )
    assert found == ["list.yaml:4: shots[1].posee: unknown field 'posee' (did you mean 'pose'?)"]


def test_every_problem_is_reported_with_its_line() -> None:
    found = problems(
        """
        session: week
        defaults:
          repeat: 0
        shots:
          - pose: [not, text]
          - expression: no
        matrices:
          - axes: {pose: [a, b, a]}
            pose: fixed
            exclude: [{outfit: x}]
            overrides:
              - when: {pose: c}
                pose: z
        """
    )
    text = "\n".join(found)
    assert "list.yaml:4: defaults.repeat: Input should be greater than or equal to 1" in text
    assert "list.yaml:6: shots[0].pose: Input should be a valid string" in text
    assert "list.yaml:7: shots[1].expression" in text and "quote the text" in text
    # semantic checks are reported only once the structure is valid
    assert len(found) == 3


def test_matrix_rules_are_checked_against_the_axes() -> None:
    found = problems(
        """
        matrices:
          - axes: {pose: [a, b, a]}
            pose: fixed
            exclude: [{outfit: x}]
            overrides:
              - when: {pose: c}
                pose: z
        """
    )
    assert found == [
        "list.yaml:3: matrices[0].axes.pose[2]: 'a' is listed twice",
        "list.yaml:4: matrices[0].pose: pose is both an axis and a fixed value of this matrix",
        "list.yaml:5: matrices[0].exclude[0].outfit: 'outfit' is not an axis (axes: pose)",
        "list.yaml:7: matrices[0].overrides[0].when.pose: 'c' is not one of the pose values "
        "(a, b, a)",
        "list.yaml:8: matrices[0].overrides[0].pose: an override cannot change the axis 'pose' "
        "(use exclude and a shot)",
    ]


def test_other_mistakes() -> None:
    assert problems("shots: []\n") == [
        "list.yaml:1: the shot list has no shots (add shots: or matrices:)"
    ]
    assert problems("") == ["list.yaml:1: the file is empty"]
    assert problems("- a\n- b\n")[0].startswith("list.yaml:1: a shot list is a mapping")
    assert problems("shots: [{pose: a}]\nshots: [{pose: b}]\n") == [
        "list.yaml:2: shots: duplicate key (also line 1)"
    ]
    assert problems("shots:\n  - {pose: a, size: 1024x1024, params: {size: auto}}\n") == [
        "list.yaml:2: shots[0].size: size is set twice (here and in params); keep one"
    ]
    assert "use repeat" in problems("shots: [{pose: a, params: {n: 2}}]\n")[0]
    assert (
        "list.yaml:2: shots[0].refs[0]: no file at"
        in problems("shots:\n  - {pose: a, refs: [missing.png]}\n")[0]
    )
    assert (
        "a batch holds at most"
        in problems(
            "matrices:\n  - axes: {pose: ["
            + ",".join(map(str, range(101)))
            + "]}\n    repeat: 100\n"
        )[0]
    )
    assert problems("matrices:\n  - axes: {}\n") == [
        "list.yaml:2: matrices[0].axes: a matrix needs at least one axis (pose: [...], ...)"
    ]
    assert problems("version: 2\nshots: [{pose: a}]\n") == [
        "list.yaml:1: version: this onmodel reads shot-list version 1"
    ]


def test_syntax_error_has_a_line() -> None:
    found = problems("shots:\n  - pose: a\n  - pose: [b\n")
    assert found[0].startswith("list.yaml:4: not valid YAML")


def test_error_message_is_one_line_with_all_problems() -> None:
    with pytest.raises(ShotListError) as caught:
        parse_shot_list("shots:\n  - posee: a\n  - pose: [1]\n", label="l.yaml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("l.yaml:2: shots[0].posee: unknown field")
    assert "(and 1 more: l.yaml:3: shots[1].pose" in message
    assert caught.value.exit_code == 2


def test_load_names_missing_files(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no such file"):
        load_shot_list(tmp_path / "nope.yaml")
    path = tmp_path / "mia-week.yaml"
    path.write_text("shots: [{pose: a}]\n")
    loaded = load_shot_list(path)
    assert loaded.name == "mia-week" and loaded.source == path.resolve()


# ---------------------------------------------------------------------------------- schema


def test_json_schema_describes_the_format() -> None:
    schema = json_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) >= {"session", "defaults", "shots", "matrices", "name"}
    fields = schema["$defs"]["Shot"]["properties"]
    assert "from" in fields and "repeat" in fields and "from_image" not in fields
    assert schema["patternProperties"] == {"^x-": {}}
    ShotList.model_validate({"shots": [{"pose": "a", "from": 3}]})


def test_schema_command_prints_valid_json() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "onmodel", "batch", "schema"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["title"] == "onmodel shot list"
