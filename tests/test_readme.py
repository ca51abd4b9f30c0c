"""The README's library example is real code: run it."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_library_example_runs(capsys: object) -> None:
    text = README.read_text(encoding="utf-8")
    (example,) = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "Studio" in b]
    exec(compile(example, "README.md", "exec"), {})


def test_readme_set_up_commands_are_what_ci_runs() -> None:
    text = README.read_text(encoding="utf-8")
    assert "bash scripts/setup && . .venv/bin/activate && onmodel demo" in text
    assert "bash scripts/test" in text
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash scripts/test" in ci


def test_readme_shot_list_example_is_a_valid_shot_list() -> None:
    from onmodel.batch.spec import parse_shot_list

    text = README.read_text(encoding="utf-8")
    (example,) = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "matrices:" in b]
    loaded = parse_shot_list(example, label="README.md")
    assert loaded.spec.matrices and loaded.spec.shots
