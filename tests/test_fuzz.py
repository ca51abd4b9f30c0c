"""Property-based fuzzing of what users type: CLI arguments, model sheets and shot lists.

Whatever Hypothesis makes up, onmodel either does the thing (exit 0) or refuses in one line
(exit 1 or 2, ``error: ...``), never reaches the "unexpected" fallback (``run_cli`` re-raises it),
writes nothing when it refuses, and answers within a generous deadline per input.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_inprocess import Outcome, assert_refused_cleanly, run_cli, snapshot

# ONMODEL_FUZZ_EXAMPLES=2000 fuzzes deeper, with fresh random inputs, when hunting for bugs.
DEEP = int(os.environ.get("ONMODEL_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=DEEP or 40,
    deadline=timedelta(seconds=30),  # a hang, not a slow machine, is what this catches
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=not DEEP,  # the same inputs in CI: a failure there can be reproduced locally
)

# Inputs that broke onmodel before, mixed into the random ones.
NASTY = [
    "",
    "0",
    "-1",
    "9999999999999999999999999",
    "-9999999999999999999999999",
    "1e999",
    "nan",
    "inf",
    "-inf",
    "banana",
    "\x00",
    "a\x00b",
    "\x1b]0;pwned\x07",
    "\x1b[2J",
    "x" * 5_000,
    "#" * 3,
    "../../etc/passwd",
    "rgb(99999999999999999999999,0,0)",
    "1024x1536",
    "99999999x99999999",
]
values = st.one_of(st.sampled_from(NASTY), st.text(max_size=60), st.integers().map(str))
names = itertools.count()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One series to fuzz against: a character, a current session, a shot."""
    path = tmp_path_factory.mktemp("fuzz") / "home"
    for args in (
        ("character", "new", "Mia", "--prompt", "a girl with red hair"),
        ("session", "new", "mia", "--title", "Week"),
        ("shot", "--pose", "waving"),
    ):
        assert run_cli(path, *args).code == 0
    yield path


def check(home: Path, *args: str) -> Outcome:
    """Run one fuzzed command and hold it to the rules in this module's docstring."""
    before = snapshot(home)
    outcome = run_cli(home, *args)
    if outcome.code != 0:
        assert_refused_cleanly(outcome)
        assert snapshot(home) == before, f"refused but wrote something: {args!r}"
    return outcome


COMMANDS = [
    ("show", "{}"),
    ("retry", "{}"),
    ("tree", "--session", "{}"),
    ("session", "show", "{}"),
    ("session", "use", "{}"),
    ("character", "show", "{}"),
    ("cost", "{}"),
    ("batch", "status", "{}"),
    ("shot", "--dry-run", "--pose", "{}"),
    ("shot", "--dry-run", "--scene", "{}", "--expression", "{}"),
    ("shot", "--dry-run", "--from", "{}"),
    ("shot", "--dry-run", "--size", "{}"),
    ("shot", "--dry-run", "--quality", "{}"),
    ("shot", "--dry-run", "--max-cost", "{}"),
    ("shot", "--dry-run", "--model", "{}"),
    ("shot", "--dry-run", "--provider", "{}"),
    ("shot", "--dry-run", "--ref", "{}"),
    ("shot", "--outfit", "{}"),
    ("session", "new", "mia", "--title", "{}", "--json"),
    ("session", "new", "mia", "--size", "{}", "--quality", "{}"),
    ("character", "new", "{}", "--prompt", "a girl", "--provider", "preview"),
    ("character", "new", "Fz", "--prompt", "{}", "--slug", "{}"),
]


@FUZZ
@given(command=st.sampled_from(COMMANDS), filler=st.lists(values, min_size=2, max_size=2))
def test_fuzzed_cli_arguments(home: Path, command: tuple[str, ...], filler: list[str]) -> None:
    fill = iter(filler)
    args = [next(fill) if part == "{}" else part for part in command]
    check(home, *args)


SHEET_KEYS = [
    "style",
    "species",
    "hair",
    "hair_color",
    "eye_color",
    "skin_color",
    "outfit",
    "outfit_colors",
    "palette",
    "must_keep",
    "avoid",
    "hairr",
]
scalars = st.one_of(values, st.integers(), st.floats(), st.booleans(), st.none())
yaml_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)


@FUZZ
@given(
    sheet=st.one_of(
        st.dictionaries(st.sampled_from(SHEET_KEYS), yaml_values, max_size=5).map(yaml.safe_dump),
        st.text(max_size=200),
    )
)
def test_fuzzed_model_sheets(
    home: Path, tmp_path_factory: pytest.TempPathFactory, sheet: str
) -> None:
    path = tmp_path_factory.mktemp("sheet") / "sheet.yaml"
    path.write_text(sheet, encoding="utf-8")
    name = f"Sheet {next(names)}"
    check(home, "character", "new", name, "--prompt", "a girl", "--sheet", str(path))


SHOT_KEYS = ["pose", "outfit", "expression", "scene", "action", "text", "size", "quality"]
SHOT_KEYS += ["model", "provider", "from", "repeat", "refs", "params", "posee"]
shot = st.dictionaries(st.sampled_from(SHOT_KEYS), yaml_values, max_size=4)


def shot_list(fields: dict[str, Any]) -> str:
    return yaml.safe_dump(fields, allow_unicode=False)


@FUZZ
@given(
    spec=st.one_of(
        st.fixed_dictionaries(
            {"shots": st.lists(shot, max_size=3)},
            optional={
                "defaults": shot,
                "session": values,
                "name": values,
                "matrices": st.lists(
                    st.fixed_dictionaries(
                        {"axes": st.dictionaries(st.sampled_from(SHOT_KEYS), st.lists(values))}
                    ),
                    max_size=2,
                ),
            },
        ).map(shot_list),
        st.text(max_size=200),
    )
)
def test_fuzzed_shot_lists(home: Path, tmp_path_factory: pytest.TempPathFactory, spec: str) -> None:
    path = tmp_path_factory.mktemp("list") / "week.yaml"
    path.write_text(spec, encoding="utf-8")
    check(home, "batch", "run", str(path), "--dry-run")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_every_command_survives_every_known_nasty_value(
    home: Path, command: tuple[str, ...]
) -> None:
    """Hypothesis samples; this sweeps each input that once broke onmodel through every command."""
    for value in NASTY:
        check(home, *[value if part == "{}" else part for part in command])
