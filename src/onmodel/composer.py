"""Render prompts from Jinja templates, strictly.

Templates are looked up in the user's folder first, then in the packaged ``templates/``, so a
user can restyle every prompt without forking. Rendering is sandboxed (templates may come from
anyone) and strict: a missing variable is an error naming the template, the line and the
variable, never a silently empty hole in a prompt that costs money.
"""

from __future__ import annotations

import hashlib
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from onmodel.errors import TemplateError
from onmodel.resources import templates_dir

ANCHOR_TEMPLATE = "prompts/anchor.j2"
SHOT_TEMPLATE = "prompts/shot.j2"
PRIMER_TEMPLATE = "prompts/primer.j2"
CHATGPT_SHOT_TEMPLATE = "prompts/chatgpt_shot.j2"
VIEW_TEMPLATE = "prompts/view.j2"


@dataclass(frozen=True)
class Rendered:
    text: str
    template_name: str
    template_hash: str  # sha256 of the template source, so a prompt can be traced to its text


@dataclass(frozen=True)
class TemplateInfo:
    name: str
    origin: str  # "user" or "packaged"
    path: Path


def template_environment(user_dir: Path | None, *, autoescape: bool) -> SandboxedEnvironment:
    """The one way onmodel runs templates: sandboxed, strict, user folder before packaged.

    Prompts are rendered without escaping (they must read exactly as written); HTML pages
    (export, web UI) with it.
    """
    loaders = [FileSystemLoader(str(templates_dir()))]
    if user_dir is not None:
        loaders.insert(0, FileSystemLoader(str(user_dir)))
    return _BoundedSandbox(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=autoescape,
    )


MAX_REPEAT_RESULT = 1_000_000
"""The longest string or list a template's ``*`` may build: a template is text, not a bomb."""
MAX_PROMPT_RENDER = 1_000_000
"""Characters a prompt template may produce before rendering stops (no model takes more)."""


class _BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox, which already refuses unsafe attributes and huge ``range()`` calls,
    plus bounds on the two operators that can ask for gigabytes or hours in one expression:
    ``"a" * 999999999999`` and ``9 ** 9 ** 9``."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for items, times in ((left, right), (right, left)):
                repeated = isinstance(items, (str, list, tuple)) and isinstance(times, int)
                if repeated and len(items) * times > MAX_REPEAT_RESULT:
                    raise SecurityError(
                        f"a repetition of {len(items) * times:,} items; at most "
                        f"{MAX_REPEAT_RESULT:,}"
                    )
        integers = isinstance(right, int) and isinstance(left, int)
        if operator == "**" and integers and abs(left) > 1 and right > 1000:
            raise SecurityError(f"a power of {right}; at most 1000")
        return super().call_binop(context, operator, left, right)


class Composer:
    def __init__(self, user_dir: Path | None = None) -> None:
        self.user_dir = user_dir
        self.packaged_dir = templates_dir()
        self.env = template_environment(user_dir, autoescape=False)
        self.env.filters["sentence"] = sentence

    def render(self, name: str, context: dict[str, Any], *, collapse: bool = True) -> Rendered:
        """Render ``name``; with ``collapse`` the result is one tidy paragraph per block."""
        try:
            template = self.env.get_template(name)
        except TemplateNotFound as exc:
            raise TemplateError(f"template {name!r} not found (looked in {self._where()})") from exc
        except TemplateSyntaxError as exc:
            raise TemplateError(
                f"template {exc.name or name!r} line {exc.lineno}: syntax error: {exc.message}"
            ) from exc
        try:
            text = _bounded_render(template, context)
        except UndefinedError as exc:
            line = _template_line(exc, template.filename)
            where = f" line {line}" if line else ""
            raise TemplateError(f"template {name!r}{where}: {_undefined_message(exc)}") from exc
        except SecurityError as exc:
            raise TemplateError(f"template {name!r}: unsafe operation refused ({exc})") from exc
        except (ArithmeticError, LookupError, TypeError, ValueError, RecursionError) as exc:
            # the template's own logic failed (a user's template): say where, not a traceback
            line = _template_line(exc, template.filename)
            where = f" line {line}" if line else ""
            kind = type(exc).__name__
            raise TemplateError(f"template {name!r}{where}: {kind}: {exc}") from exc
        source = Path(template.filename).read_bytes() if template.filename else b""
        return Rendered(
            text=tidy(text) if collapse else text.strip() + "\n",
            template_name=name,
            template_hash=hashlib.sha256(source).hexdigest(),
        )

    def list_templates(self) -> list[TemplateInfo]:
        found: dict[str, TemplateInfo] = {}
        for origin, root in (("packaged", self.packaged_dir), ("user", self.user_dir)):
            if root is None or not root.is_dir():
                continue
            for path in sorted(root.rglob("*")):
                if path.is_file() and not path.name.startswith("."):
                    name = path.relative_to(root).as_posix()
                    found[name] = TemplateInfo(name=name, origin=origin, path=path)
        return [found[name] for name in sorted(found)]

    def source(self, name: str) -> TemplateInfo:
        for info in self.list_templates():
            if info.name == name or info.name == f"prompts/{name}" or info.path.stem == name:
                return info
        raise TemplateError(f"template {name!r} not found (looked in {self._where()})")

    def _where(self) -> str:
        dirs = [str(d) for d in (self.user_dir, self.packaged_dir) if d is not None]
        return ", ".join(dirs)


def _bounded_render(template: Any, context: dict[str, Any]) -> str:
    """Render piece by piece, stopping once the text is longer than any prompt can be."""
    pieces: list[str] = []
    total = 0
    for piece in template.generate(context):
        total += len(piece)
        if total > MAX_PROMPT_RENDER:
            raise SecurityError(f"the rendered text passes {MAX_PROMPT_RENDER:,} characters")
        pieces.append(piece)
    return "".join(pieces)


def sentence(text: str) -> str:
    """End a user's phrase with a full stop so joined parts read as separate sentences."""
    text = str(text).strip()
    return text if not text or text[-1] in ".!?;:" else f"{text}."


def tidy(text: str) -> str:
    """Collapse the whitespace templates leave behind; blank lines separate paragraphs."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def _template_line(exc: BaseException, filename: str | None) -> int | None:
    if not filename:
        return None
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    return lines[-1] if lines else None


def _undefined_message(exc: UndefinedError) -> str:
    match = re.match(r"'([^']+)' is undefined", exc.message or "")
    if match:
        return f"variable {match.group(1)!r} is not defined"
    match = re.search(r"has no attribute '([^']+)'", exc.message or "")
    if match:
        return f"variable {match.group(1)!r} is not defined ({exc.message})"
    return exc.message or "undefined variable"
