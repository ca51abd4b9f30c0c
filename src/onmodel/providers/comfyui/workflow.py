"""A user's ComfyUI workflow (API format) with onmodel's placeholders, read and filled in.

ComfyUI runs whatever graph it is given, so onmodel cannot know which node takes the prompt
or the reference images; the user marks them with placeholders in the graph's string inputs
(``"text": "{{prompt}}, film grain"``, ``"image": "{{image_1}}"``) and onmodel fills them.
Everything here is offline: a bad workflow is refused with one line naming the node before
anything is recorded or queued.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_WORKFLOW_BYTES = 2 * 1024 * 1024
"""Larger than any hand-made graph (a big one is ~100 kB); a larger file is most likely not
a workflow (a UI export with embedded images, a checkpoint typed by mistake)."""

MAX_NODES = 2000

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
IMAGE_SLOT = re.compile(r"image_([1-9][0-9]?)")
TEXT_FIELDS: tuple[str, ...] = ("prompt", "negative_prompt")
NUMBER_FIELDS: tuple[str, ...] = ("seed", "width", "height")
KNOWN = (*TEXT_FIELDS, *NUMBER_FIELDS)
"""Placeholders besides the image slots ``image_1`` ... ``image_N``."""

OUTPUT_CLASSES: tuple[str, ...] = ("SaveImage", "PreviewImage")


class WorkflowError(Exception):
    """A workflow onmodel cannot use; the message is one line naming the file and node."""


@dataclass(frozen=True)
class Workflow:
    """A workflow file as read: its graph, digest and what its placeholders ask for."""

    path: Path
    sha256: str
    graph: Mapping[str, Any]
    slots: int  # how many image slots ({{image_1}} ... {{image_N}}) it has
    prompt_nodes: tuple[str, ...]  # the nodes whose inputs take {{prompt}}
    names: frozenset[str]  # every placeholder used

    def output_nodes(self) -> list[str]:
        """Nodes whose images count as the result, the graph's SaveImage nodes first."""
        return [
            node_id
            for kind in OUTPUT_CLASSES
            for node_id, node in self.graph.items()
            if node.get("class_type") == kind
        ]


EXAMPLES = Path(__file__).parent / "workflows"
"""The example workflows shipped to start from (``anchor-sdxl.json``, ``ipadapter-sdxl.json``)."""

EXAMPLE_PREFIX = "example:"
"""``workflow=example:ipadapter-sdxl`` names a shipped example, wherever onmodel is installed."""


def resolve(path: str | Path, base: Path | None = None) -> Path:
    """Where a workflow named as typed is: a shipped example by its name
    (``example:anchor-sdxl``), or a file, ``~`` expanded, a relative path taken from ``base``
    (the current directory, as every other file argument of the CLI is), made absolute so
    the record says exactly which file ran."""
    text = str(path).strip()
    if text.startswith(EXAMPLE_PREFIX):
        name = text.removeprefix(EXAMPLE_PREFIX).strip()
        return EXAMPLES / (name if name.endswith(".json") else f"{name}.json")
    found = Path(text).expanduser()
    return found if found.is_absolute() else (base or Path.cwd()).absolute() / found


def example_names() -> list[str]:
    return sorted(each.stem for each in EXAMPLES.glob("*.json"))


def load(path: str | Path) -> Workflow:
    """Read and check a workflow file; :class:`WorkflowError` says what is wrong."""
    where = resolve(path)
    label = str(path)
    try:
        size = where.stat().st_size
    except OSError:
        if label.startswith(EXAMPLE_PREFIX):
            shipped = ", ".join(EXAMPLE_PREFIX + name for name in example_names())
            raise WorkflowError(f"no example workflow {label} (shipped: {shipped})") from None
        raise WorkflowError(f"workflow {label}: no such file") from None
    if not where.is_file():
        raise WorkflowError(f"workflow {label} is not a file")
    if size > MAX_WORKFLOW_BYTES:
        raise WorkflowError(
            f"workflow {label} is {size:,} bytes, over the {MAX_WORKFLOW_BYTES:,} a workflow "
            "can be (is it a workflow saved with Save (API)?)"
        )
    try:
        data = where.read_bytes()
    except OSError as exc:
        raise WorkflowError(f"workflow {label}: cannot read it ({exc.strerror or exc})") from None
    try:
        graph = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WorkflowError(f"workflow {label} is not JSON ({_short(exc)})") from None
    return _checked(label, where, hashlib.sha256(data).hexdigest(), graph)


def _checked(label: str, where: Path, sha256: str, graph: object) -> Workflow:
    if not isinstance(graph, dict) or not graph:
        raise WorkflowError(
            f"workflow {label} is not in ComfyUI's API format (an object of node id -> "
            "{class_type, inputs}); save it with Save (API)"
        )
    if "nodes" in graph and "links" in graph:
        raise WorkflowError(
            f"workflow {label} is a UI workflow, not the API format: in ComfyUI, export it "
            "with Workflow > Export (API) / Save (API)"
        )
    if len(graph) > MAX_NODES:
        raise WorkflowError(f"workflow {label} has {len(graph):,} nodes, over {MAX_NODES:,}")
    names: set[str] = set()
    prompt_nodes: list[str] = []
    for node_id, node in graph.items():
        if (
            not isinstance(node, dict)
            or not isinstance(node.get("class_type"), str)
            or not isinstance(node.get("inputs"), dict)
        ):
            raise WorkflowError(
                f"workflow {label}: node {node_id} is not {{class_type, inputs}} (is the file "
                "saved with Save (API)?)"
            )
        for found in _placeholders(node["inputs"]):
            if found not in KNOWN and not IMAGE_SLOT.fullmatch(found):
                raise WorkflowError(
                    f"workflow {label}: node {node_id} ({node['class_type']}) has an unknown "
                    f"placeholder {{{{{found}}}}} (known: {_known_list()})"
                )
            names.add(found)
            if found == "prompt" and node_id not in prompt_nodes:
                prompt_nodes.append(node_id)
    if "prompt" not in names:
        raise WorkflowError(
            f"workflow {label} has no {{{{prompt}}}} placeholder: put it in the text input "
            "of your positive prompt node (e.g. CLIPTextEncode)"
        )
    numbers = sorted(int(m.group(1)) for n in names if (m := IMAGE_SLOT.fullmatch(n)))
    if numbers != list(range(1, len(numbers) + 1)):
        missing = next(i for i in range(1, numbers[-1] + 1) if i not in numbers)
        raise WorkflowError(
            f"workflow {label} uses {{{{image_{numbers[-1]}}}}} but not {{{{image_{missing}}}}}:"
            " number the image slots from 1 without gaps"
        )
    return Workflow(
        path=where,
        sha256=sha256,
        graph=graph,
        slots=len(numbers),
        prompt_nodes=tuple(prompt_nodes),
        names=frozenset(names),
    )


def _known_list() -> str:
    return ", ".join(f"{{{{{name}}}}}" for name in (*KNOWN, "image_1")) + " ... {{image_N}}"


def _placeholders(value: object) -> Iterator[str]:
    """Every placeholder in a node's inputs; links (``[node_id, index]``) hold none."""
    if isinstance(value, str):
        for match in PLACEHOLDER.finditer(value):
            yield match.group(1)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _placeholders(item)
    elif isinstance(value, list):
        for item in value:
            yield from _placeholders(item)


def fill(graph: Mapping[str, Any], values: Mapping[str, str | int]) -> dict[str, Any]:
    """A copy of ``graph`` with its placeholders replaced. A string that is exactly one
    number placeholder (``"{{seed}}"``) becomes the number itself, since ComfyUI's INT inputs
    refuse a string; anywhere else the value is written into the text."""
    filled: dict[str, Any] = copy.deepcopy(dict(graph))
    for node in filled.values():
        node["inputs"] = _filled(node["inputs"], values)
    return filled


def _filled(value: Any, values: Mapping[str, str | int]) -> Any:
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole is not None and isinstance(values.get(whole.group(1)), int):
            return values[whole.group(1)]
        return PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), "")), value)
    if isinstance(value, dict):
        return {key: _filled(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_filled(item, values) for item in value]
    return value


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:120]
