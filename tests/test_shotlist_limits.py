"""Hostile or absurd shot lists (and the YAML they share with sheets and tables) are refused
cheaply, in one line naming the file and line, before anything is written.

Nothing here times the code: work is counted (nodes visited, bytes written), and the CLI runs
in a subprocess with a generous time-out, so a regression shows as a failure, not a flake.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml
from sqlmodel import select

from onmodel import yamlload
from onmodel.batch import ShotListError, load_shot_list, parse_shot_list, run_batch
from onmodel.batch.yamlpos import load_positioned
from onmodel.capabilities import load_capabilities
from onmodel.errors import UsageError
from onmodel.limits import MAX_ID
from onmodel.sheet import ModelSheet
from onmodel.store.database import transaction
from onmodel.store.models import BatchRow, ImageRow
from onmodel.studio import Studio
from test_batch_support import cli_command, cli_env, make_session

# ---------------------------------------------------------------------------------- helpers


def laughs(levels: int, *, width: int = 9, seed: str = "x-a0: &a0 [lol]") -> str:
    """The "billion laughs": each level lists the previous one ``width`` times."""
    lines = [seed]
    for level in range(1, levels + 1):
        items = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"x-a{level}: &a{level} [{items}]")
    return "\n".join(lines) + "\n"


def refused(text: str) -> str:
    """The one-line message a shot list is refused with."""
    with pytest.raises(ShotListError) as caught:
        parse_shot_list(text, label="week.yaml")
    message = str(caught.value)
    assert "\n" not in message and "unexpected" not in message
    return message


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``onmodel ARGS`` in a subprocess; a hang fails the test after a generous minute."""
    return subprocess.run(
        cli_command(*args), capture_output=True, text=True, env=cli_env(home), timeout=60
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *parts: str) -> str:
    assert result.returncode in (1, 2), result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), lines[0]
    assert "unexpected" not in lines[0] and "Traceback" not in result.stderr
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


def write(tmp_path: Path, text: str, name: str = "week.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------- aliases


@pytest.mark.parametrize("levels", [7, 9, 30])
def test_alias_bombs_are_refused_after_reading_each_node_once(
    levels: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    visited = 0
    children = yamlload._children

    def counting(node: yaml.Node) -> list[yaml.Node]:
        nonlocal visited
        visited += 1
        return children(node)

    monkeypatch.setattr(yamlload, "_children", counting)
    message = refused(laughs(levels) + "shots: [{pose: a}]\n")
    assert message.startswith("week.yaml:6: ")  # x-a5: the first level past the bound
    assert f"at most {yamlload.MAX_NODES:,}" in message
    # each distinct node is read twice at most (pushed, then measured), never per path
    assert visited <= 2 * (2 + 10 * levels)


def test_an_expansion_just_under_the_bound_is_fine() -> None:
    # 9**4 values and their lists: about 7,400 values, from a 300-byte file
    loaded = parse_shot_list(laughs(4) + "shots: [{pose: a}]\n", label="week.yaml")
    assert loaded.spec.shots[0].pose == "a"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("x-r: &r [*r]\nshots: [{pose: a}]\n", 1),
        ("shots: [{pose: a}]\nx-m: &m {k: [*m]}\n", 2),
        ("shots: &s [{pose: a, text: *s}]\n", 1),
        ("x-base: &b\n  <<: *b\nshots: [{pose: a}]\n", 1),  # the anchor's line
    ],
)
def test_recursive_aliases_are_refused_with_their_line(text: str, line: int) -> None:
    message = refused(text)
    assert message.startswith(f"week.yaml:{line}: an alias refers to a node that contains it")


def test_nesting_by_a_chain_of_aliases_is_bounded() -> None:
    chain = ["x-0: &a0 [end]"] + [f"x-{i}: &a{i} [*a{i - 1}]" for i in range(1, 200)]
    message = refused("\n".join(chain) + "\nshots: [{pose: a}]\n")
    assert f"nested more than {yamlload.MAX_DEPTH} levels" in message


def test_aliases_that_are_merely_shared_still_give_lines() -> None:
    text = textwrap.dedent(
        """\
        x-base: &base {outfit: hoodie}
        shots:
          - <<: *base
            pose: a
          - <<: *base
            posee: b
        """
    )
    assert refused(text).startswith("week.yaml:6: shots[1].posee: unknown field")


def test_a_duplicate_key_in_an_aliased_mapping_is_reported_once() -> None:
    text = "x-b: &b {pose: a, pose: b}\nshots:\n  - *b\n  - *b\n"
    duplicates = load_positioned(text).duplicates
    assert [(loc, again.line) for loc, _, again in duplicates] == [(("x-b", "pose"), 1)]


def test_the_cli_refuses_a_bomb_in_a_dry_run(tmp_path: Path) -> None:
    path = write(tmp_path, laughs(9) + "shots: [{pose: a}]\n", "bomb.yaml")
    result = run_cli(tmp_path / "home", "batch", "run", str(path), "--dry-run")
    assert result.returncode == 2
    assert_one_line_error(result, "bomb.yaml:6:", "100,000")


# ------------------------------------------------------------------------- sheets and tables


@pytest.mark.parametrize(
    "text",
    [laughs(9, seed="hair: &a0 lol"), "must_keep: &r [*r]\n"],
)
def test_a_model_sheet_with_an_alias_bomb_or_cycle_is_a_one_line_usage_error(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "sheet.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        ModelSheet.from_yaml_file(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "line" in message


def test_the_cli_refuses_a_sheet_with_a_recursive_alias(tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.yaml"
    sheet.write_text("hair: red\nmust_keep: &r [*r]\n", encoding="utf-8")
    result = run_cli(
        tmp_path / "home", "character", "new", "Rin", "-p", "a girl", "--sheet", str(sheet)
    )
    assert result.returncode == 2
    assert_one_line_error(result, "sheet.yaml", "alias")


def test_a_capability_table_with_an_alias_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(laughs(9) + "models: {}\n", encoding="utf-8")
    with pytest.raises(UsageError, match="at most 100,000") as caught:
        load_capabilities(path)
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------------------------- integers


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("from", "9999999999999999999999999", f"less than or equal to {MAX_ID}"),
        ("from", str(MAX_ID + 1), f"less than or equal to {MAX_ID}"),
        ("from", "-3", "greater than or equal to 1"),
        ("from", "0", "greater than or equal to 1"),
        ("repeat", "1000000000", "less than or equal to 100"),
        ("repeat", "99999999999999999999999", "less than or equal to 100"),
        ("repeat", "-1", "greater than or equal to 1"),
        ("from", ".inf", "finite number"),
        ("repeat", ".nan", "finite number"),
    ],
)
def test_integer_fields_outside_their_range_are_refused_with_the_line(
    field: str, value: str, says: str
) -> None:
    message = refused(f"shots:\n  - pose: a\n    {field}: {value}\n")
    assert message.startswith(f"week.yaml:3: shots[0].{field}: ")
    assert says in message


def test_defaults_and_matrices_are_bounded_too() -> None:
    assert refused("defaults: {from: -1}\nshots: [{pose: a}]\n").startswith(
        "week.yaml:1: defaults.from:"
    )
    message = refused("matrices:\n  - axes: {pose: [a, b]}\n    repeat: 1000000000\n")
    assert message.startswith("week.yaml:3: matrices[0].repeat:")


def test_a_session_id_no_row_can_have_is_refused_with_the_line() -> None:
    for value in ("99999999999999999999", "0", "'²'"):
        message = refused(f"session: {value}\nshots: [{{pose: a}}]\n")
        assert message.startswith("week.yaml:1: session: a session id is a number from 1 to")
    assert parse_shot_list("session: 12\nshots: [{pose: a}]\n").spec.session == "12"


def test_params_that_json_cannot_hold_are_refused() -> None:
    for value in (".nan", ".inf", "[1, {deep: -.inf}]"):
        message = refused(f"shots:\n  - pose: a\n    params: {{seed: {value}}}\n")
        assert message.startswith("week.yaml:3: shots[0].params: params hold")


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--budget", "nan", "--budget"),
        ("--budget", "inf", "--budget"),
        ("--budget", "-Infinity", "--budget"),
        ("--rpm", "nan", "--rpm"),
        ("--rpm", "inf", "--rpm"),
        ("--rpm", "0", "--rpm"),
        ("--concurrency", "99999999999999999999", "--concurrency"),
    ],
)
def test_run_options_that_are_not_finite_are_refused(
    tmp_path: Path, option: str, value: str, says: str
) -> None:
    path = write(tmp_path, "shots: [{pose: a}]\n")
    result = run_cli(tmp_path / "home", "batch", "run", str(path), option, value, "--dry-run")
    assert result.returncode == 2
    assert_one_line_error(result, says)


# ------------------------------------------------------------------------ control characters


@pytest.mark.parametrize(
    ("field", "value", "name"),
    [
        ("pose", '"a\\0b"', "NUL"),
        ("text", '"a\\eb"', "ESCAPE"),
        ("outfit", '"a\\x07b"', "BELL"),
    ],
)
def test_a_control_character_in_a_shot_field_is_refused_with_the_line(
    field: str, value: str, name: str
) -> None:
    message = refused(f"shots:\n  - pose: fine\n  - {field}: {value}\n")
    assert message.startswith(f"week.yaml:3: shots[1].{field}: ")
    assert name in message and "control character" in message


def test_newlines_and_tabs_stay_allowed() -> None:
    loaded = parse_shot_list('shots:\n  - pose: "arms up,\\n\\tsmiling"\n')
    assert loaded.spec.shots[0].pose == "arms up,\n\tsmiling"


def test_control_characters_in_axes_and_names_are_refused_where_they_are() -> None:
    message = refused('matrices:\n  - axes:\n      pose: [a, "b\\0"]\n')
    assert message.startswith("week.yaml:3: matrices[0].axes.pose[1]: ")
    message = refused('shots:\n  - pose: a\n    name: "\\e[2J"\n')
    assert message.startswith("week.yaml:3: shots[0].name: ")


def test_the_cli_refuses_a_nul_byte_in_one_line_with_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'shots:\n  - pose: "a\\0b"\n')
    result = run_cli(tmp_path / "home", "batch", "run", str(path), "--dry-run")
    assert result.returncode == 2
    assert_one_line_error(result, "week.yaml:2: shots[0].pose", "NUL")


# --------------------------------------------------------------------------- nothing written


def _files(home: Path) -> set[Path]:
    return {p.relative_to(home) for p in home.rglob("*")}


def test_a_refused_batch_writes_nothing_not_even_its_lock(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Studio.open(home) as studio:
        make_session(studio)
        with transaction(studio.engine) as db:
            images = len(db.exec(select(ImageRow)).all())
    before = _files(home)
    path = write(tmp_path, "session: week\nshots:\n  - pose: a\n    model: gpt-image-0\n")
    result = run_cli(home, "batch", "run", str(path))
    assert_one_line_error(result, "week.yaml:3: shots[0]:", "gpt-image-0")
    assert result.returncode == 2
    assert not (home / "locks").exists()
    assert _files(home) - before == set()
    with Studio.open(home) as studio, transaction(studio.engine) as db:
        assert db.exec(select(BatchRow)).all() == []
        assert len(db.exec(select(ImageRow)).all()) == images


def test_a_refused_batch_in_the_library_leaves_no_row(studio: Studio, tmp_path: Path) -> None:
    make_session(studio)
    path = write(tmp_path, "session: week\nshots:\n  - pose: a\n    size: 3x3\n")
    with pytest.raises(ShotListError, match=r"week\.yaml:3: shots\[0\]: .*3x3"):
        run_batch(studio, path)
    assert not (studio.paths.home / "locks").exists()
    with transaction(studio.engine) as db:
        assert db.exec(select(BatchRow)).all() == []


@pytest.mark.parametrize("target", ["99999999999999999999", "#0", "²"])
def test_batch_status_of_an_id_no_row_can_have_is_not_found(tmp_path: Path, target: str) -> None:
    result = run_cli(tmp_path / "home", "batch", "status", target)
    assert result.returncode == 2
    assert_one_line_error(result, "no batch")


def test_the_readme_states_the_limits_the_code_keeps() -> None:
    from onmodel.batch.spec import MAX_REPEAT, MAX_SHOTS

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Shot lists")[1].split("\n## ")[0]
    for figure in (MAX_SHOTS, MAX_REPEAT, yamlload.MAX_NODES, yamlload.MAX_DEPTH):
        assert f"{figure:,}" in section


def test_a_shot_list_is_read_up_to_a_bound(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a regular file"):
        load_shot_list("/dev/zero")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"shots: []\n" + b"#" * (8 * 1024 * 1024))
    with pytest.raises(UsageError, match="larger than 8 MB"):
        load_shot_list(big)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="pipe"):
        load_shot_list(fifo)
    path = tmp_path / "week.yaml"
    path.write_bytes(b"shots: [{pose: \xff}]\n")
    with pytest.raises(UsageError, match="not UTF-8 text"):
        load_shot_list(path)


def test_batch_status_of_a_name_too_long_for_a_path_is_not_found(tmp_path: Path) -> None:
    result = run_cli(tmp_path / "home", "batch", "status", "x" * 5_000)
    assert result.returncode == 2
    assert_one_line_error(result, "no batch or shot list named")
