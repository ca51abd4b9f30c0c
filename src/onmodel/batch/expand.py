"""Turning a shot list into concrete shots, each with a key that says what it *is*.

The key is what makes a batch idempotent: a sha256 of the session and everything that decides
the image — the request fields, provider, model, merged parameters, the variation number, and
an explicit ``from:`` image or reference files (by content). It does not depend on where the
shot sits in the file or on the shot's own ``name:``, so reordering a file, renaming a shot or
listing it twice never makes it generate again, while changing what it asks for always does.

Which batch a shot belongs to is not in the key: the batch's name is. A shot counts as made
when a batch of the same name in the same session made it (``store.batches.key_records``), so
a shot list with another ``name:`` (or, without one, another file name) is another batch and
makes its shots anew. The session part is the slug the batch first ran under
(``batch.key_slug``), so renaming a session changes no key.

A checked shot with ``takes: K`` expands into its K takes, keyed as ``repeat``'s variations
are, so take 1 has the key the plain shot had: adding ``takes:`` to a list already made checks
what exists and retakes only what drifted. Each take carries a :class:`TakeOf` naming its group
(take 1's key), which the runner uses to make take k+1 only when every take before it drifted.

Who is in a shot (``with:``/``cast:``) and where (``set:``) become the request's ``cast`` and
``set`` through :func:`onmodel.sheet.cast_fields`, as ``--with``/``--cast``/``--set`` do, so a
shot of the lead alone has an empty cast and keeps the key it had before casts existed, and a
shot with someone else in it has another key. Names are keyed by the slug they name
(``SessionDefaults.aliases``, looked up once per name by the runner), so ``with: Rin``,
``with: rin`` and ``with: "#2"`` are one shot and ``cast: [Mia]`` is the lead alone; whether a
name is in the session's cast is the planner's to say (the runner plans every distinct cast
before anything is spent).

Expansion is pure: it reads the shot list, the session's defaults and the reference files'
bytes, and touches no database, so ``--dry-run`` and the tests can call it freely.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from onmodel.batch.spec import (
    CAST_FIELDS,
    REQUEST_FIELDS,
    WHO,
    AxisValue,
    LoadedShotList,
    Matrix,
    Problem,
    ShotFields,
    ShotList,
    ShotListError,
    axis_text,
    format_loc,
    layer_value,
    names_of,
    sorted_problems,
)
from onmodel.batch.yamlpos import Loc
from onmodel.blobs import sha256_file
from onmodel.checkers import DEFAULT_CHECKER
from onmodel.checkers.base import DEFAULT_MIN_SCORE
from onmodel.errors import UsageError
from onmodel.providers import get_provider
from onmodel.providers.base import Provider
from onmodel.sheet import ShotRequest, cast_fields, with_take

KEY_FORMAT = 1
"""Bumped only if the key payload ever changes shape, so old keys stay comparable."""


@dataclass(frozen=True)
class SessionDefaults:
    """What a shot inherits from its session before the shot list's own layers."""

    slug: str
    provider: str
    model: str
    params: Mapping[str, Any] = field(default_factory=dict)
    lead: str = ""
    """The slug of the session's character: whom ``with:`` adds to."""
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Member names as the list types them (a name, a slug, an id) → the slug each names;
    a name not here is keyed as typed (the planner refuses it)."""
    member_ids: Mapping[str, int] = field(default_factory=dict)
    """Each member's slug → its id, which its shots are keyed by: a member renamed after a
    run (``character rename rin --slug rin-k``, the list edited to match) keeps its shots."""
    model_for: Callable[[str], str] | None = None
    """The model a shot of another provider uses when the list names none (the provider's
    default, when it cannot run the session's model: ``Planning.model_for``), as ``shot
    --provider`` does; None: the session's model."""


@dataclass(frozen=True)
class TakeOf:
    """How a checked shot is checked, and which of its group's takes it is.

    ``group`` is take 1's key; a shot checked without ``takes`` is a group of one. It is
    stored with the batch (:meth:`to_dict`) so ``batch status`` of a batch id, which has no
    file to expand, still knows which takes belong together.
    """

    group: str
    take: int
    takes: int
    checker: str
    min_score: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "take": self.take,
            "takes": self.takes,
            "checker": self.checker,
            "min_score": self.min_score,
        }

    @classmethod
    def from_dict(cls, data: object) -> TakeOf | None:
        """A stored take, or None for a plain shot (or a batch stored before takes)."""
        if not isinstance(data, dict):
            return None
        return cls(
            group=str(data["group"]),
            take=int(data["take"]),
            takes=int(data["takes"]),
            checker=str(data["checker"]),
            min_score=int(data["min_score"]),
        )


@dataclass(frozen=True)
class ExpandedShot:
    """One concrete shot of a batch, fully resolved and keyed."""

    key: str
    number: int
    label: str
    source: str
    line: int
    request: ShotRequest
    provider: str
    model: str
    params: dict[str, Any]
    from_image: int | None
    refs: tuple[Path, ...]
    variation: int
    variations: int
    take: TakeOf | None = None  # None: not checked

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "number": self.number,
            "label": self.label,
            "source": self.source,
            "line": self.line,
            "request": self.request.as_params(),
            "provider": self.provider,
            "model": self.model,
            "params": self.params,
            "from": self.from_image,
            "refs": [str(r) for r in self.refs],
            "variation": self.variation,
            "variations": self.variations,
            "take": None if self.take is None else self.take.to_dict(),
        }


@dataclass(frozen=True)
class Duplicate:
    """A shot that resolved to the same content as an earlier one; it runs once."""

    shot: ExpandedShot
    same_as: ExpandedShot

    def describe(self) -> str:
        return (
            f"{self.shot.source} (line {self.shot.line}) is the same shot as "
            f"{self.same_as.source} (line {self.same_as.line}); it is made once"
        )


@dataclass(frozen=True)
class Expansion:
    shots: list[ExpandedShot]
    duplicates: list[Duplicate]

    @property
    def warnings(self) -> list[str]:
        return [d.describe() for d in self.duplicates]


@dataclass
class _Resolved:
    """The running result of laying layers over each other."""

    request: dict[str, str] = field(default_factory=dict)
    who: tuple[str, tuple[str, ...]] | None = None  # ("with" or "cast", names); None: the lead
    set_: str | None = None
    provider: str | None = None
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    from_image: int | None = None
    refs: list[str] = field(default_factory=list)
    repeat: int = 1
    check: str | None = None
    min_score: int | None = None
    takes: int | None = None
    who_at: Loc = ()  # the layer that named who is in the shot, pointed at by its mistakes
    takes_at: Loc = ()  # the layers that set takes and repeat, named when the two clash
    repeat_at: Loc = ()
    clash_at: Loc = ()  # the later of the two: the layer that made the clash, pointed at

    def copy(self) -> _Resolved:
        return replace(
            self, request=dict(self.request), params=dict(self.params), refs=list(self.refs)
        )

    @property
    def checked(self) -> bool:
        """Checked when any of the three is set, with palette unless named, as on the
        command line (``shot --takes 3`` checks with palette)."""
        return self.check is not None or self.min_score is not None or self.takes is not None

    def apply(self, layer: ShotFields, at: Loc) -> _Resolved:
        """Later layers win field by field; params merge key by key."""
        out = self.copy()
        for name in REQUEST_FIELDS:
            value = getattr(layer, name)
            if value is not None:
                out.request[name] = value
        if layer.with_ is not None:  # the deeper layer's with or cast replaces the one above
            out.who, out.who_at = ("with", tuple(names_of(layer.with_))), (*at, "with")
        elif layer.cast is not None:
            out.who, out.who_at = ("cast", tuple(names_of(layer.cast))), (*at, "cast")
        if layer.set is not None:
            out.set_ = layer.set
        if layer.provider is not None:
            out.provider = layer.provider
        if layer.model is not None:
            out.model = layer.model
        if layer.params:
            out.params.update(layer.params)
        for name in ("size", "quality"):
            value = getattr(layer, name)
            if value is not None:
                out.params[name] = value
        if layer.from_image is not None:
            out.from_image = layer.from_image
        if layer.refs is not None:
            out.refs = list(layer.refs)
        if layer.repeat is not None:
            out.repeat, out.repeat_at = layer.repeat, (*at, "repeat")
            out.clash_at = out.repeat_at
        if layer.check is not None:
            out.check = layer.check
        if layer.min_score is not None:
            out.min_score = layer.min_score
        if layer.takes is not None:
            out.takes, out.takes_at = layer.takes, (*at, "takes")
            out.clash_at = out.takes_at
        return out


def shot_key(
    session_slug: str,
    request: ShotRequest,
    provider: str,
    model: str,
    params: Mapping[str, Any],
    variation: int,
    from_image: int | None = None,
    ref_digests: tuple[str, ...] = (),
) -> str:
    """The stable identity of a shot: same content in the same session, same key.

    Optional parts are left out when unused rather than written as null, so adding an
    optional part later would not change the keys of existing batches.
    """
    payload: dict[str, Any] = {
        "format": KEY_FORMAT,
        "session": session_slug,
        "request": request.as_params(),
        "provider": provider,
        "model": model,
        "params": dict(params),
        "variation": variation,
    }
    if from_image is not None:
        payload["from"] = from_image
    if ref_digests:
        payload["refs"] = list(ref_digests)
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def expand(loaded: LoadedShotList, session: SessionDefaults) -> Expansion:
    """Every shot the list asks for, in file order, keyed; duplicates collapsed.

    Raises :class:`ShotListError`, with every line, for shots that ask for both ``takes`` and
    ``repeat``: only a resolved shot knows both, as either can come from any layer; the problem
    points at the later layer of the two (the one that made the clash) and names both.
    """
    spec = loaded.spec
    start = _Resolved(provider=session.provider, params=dict(session.params)).apply(
        spec.defaults, ("defaults",)
    )
    digests: dict[Path, str] = {}
    providers: dict[str, Provider] = {}  # each built once, not once per shot
    shots: list[ExpandedShot] = []
    duplicates: list[Duplicate] = []
    first_by_key: dict[str, ExpandedShot] = {}
    problems: dict[tuple[int, str], Problem] = {}  # a matrix says it once, not per combination

    def emit(resolved: _Resolved, loc: Loc, source: str, name: str | None) -> None:
        try:
            who = _cast(resolved, session)
        except UsageError as exc:  # an empty name, a name twice: said at the layer's line
            problem = loaded.problem(resolved.who_at or loc, str(exc))
            problems.setdefault((problem.line, problem.message), problem)
            return
        request = ShotRequest(**resolved.request, **who)
        provider = resolved.provider or session.provider
        try:
            model = resolved.model or (
                session.model
                if provider == session.provider or session.model_for is None
                else session.model_for(provider)
            )
            # a file a parameter names (a ComfyUI workflow) is the list's, as refs are
            if provider not in providers:
                providers[provider] = get_provider(provider)
            params = providers[provider].resolve_params(
                {k: v for k, v in resolved.params.items() if v is not None}, loaded.base_dir
            )
        except UsageError as exc:  # an unknown provider: said at the layer's line
            problem = loaded.problem(loc, str(exc))
            problems.setdefault((problem.line, problem.message), problem)
            return
        refs = tuple(_resolve_ref(loaded.base_dir, ref) for ref in resolved.refs)
        ref_digests = tuple(_digest(digests, ref) for ref in refs)
        base_label = ", ".join(
            dict.fromkeys(part for part in (request.label(), request.cast_label()) if part)
        )
        if name:
            base_label = f"{name}: {base_label}" if base_label != "same character" else name
        takes = resolved.takes or 1
        if takes > 1 and resolved.repeat > 1:
            problem = loaded.problem(
                resolved.clash_at,
                f"takes: {takes} ({_where(loaded, resolved.takes_at)}) with repeat: "
                f"{resolved.repeat} ({_where(loaded, resolved.repeat_at)}); repeat makes "
                "variations to choose from, takes retakes one shot until it is on model: "
                "keep one",
            )
            problems.setdefault((problem.line, problem.message), problem)
            return
        count = max(takes, resolved.repeat)
        group = ""
        for variation in range(1, count + 1):
            key = shot_key(
                session.slug,
                keyed_by_id(request, session.member_ids),
                provider,
                model,
                params,
                variation,
                resolved.from_image,
                ref_digests,
            )
            take = None
            if resolved.checked:
                group = key if variation == 1 or takes == 1 else group
                take = TakeOf(
                    group=group,
                    take=variation if takes > 1 else 1,
                    takes=takes,
                    checker=resolved.check or DEFAULT_CHECKER,
                    min_score=DEFAULT_MIN_SCORE
                    if resolved.min_score is None
                    else resolved.min_score,
                )
            shot = ExpandedShot(
                key=key,
                number=len(shots) + 1,
                label=with_take(base_label, variation, count),
                source=source,
                line=loaded.line_of(loc),
                request=request,
                provider=provider,
                model=model,
                params=dict(params),
                from_image=resolved.from_image,
                refs=refs,
                variation=variation,
                variations=count,
                take=take,
            )
            earlier = first_by_key.get(key)
            if earlier is not None:
                duplicates.append(Duplicate(shot=shot, same_as=earlier))
                continue
            first_by_key[key] = shot
            shots.append(shot)

    for index, shot_spec in enumerate(spec.shots):
        loc: Loc = ("shots", index)
        emit(start.apply(shot_spec, loc), loc, format_loc(loc), shot_spec.name)
    for index, matrix in enumerate(spec.matrices):
        loc = ("matrices", index)
        for combo, resolved in _combinations(start.apply(matrix, loc), matrix, loc):
            described = ", ".join(f"{axis}={_shown(value)}" for axis, value in combo.items())
            emit(resolved, loc, f"{format_loc(loc)} {described}", matrix.name)
    if problems:
        raise ShotListError(sorted_problems(problems.values()))
    return Expansion(shots=shots, duplicates=duplicates)


def _where(loaded: LoadedShotList, loc: Loc) -> str:
    """Where a clashing key was set, as ``defaults.takes, line 2``: the two may be far apart,
    in a layer the shot inherits from."""
    return f"{format_loc(loc)}, line {loaded.line_of(loc)}"


def _shown(value: AxisValue) -> str:
    """An axis value in a shot's source: ``rin``, or ``[rin, max]`` for several names."""
    text = axis_text(value)
    return text if len(names_of(value)) == 1 else f"[{text}]"


def _cast(resolved: _Resolved, session: SessionDefaults) -> dict[str, list[str] | str]:
    """The request's ``cast`` and ``set``, by the rule ``--with``/``--cast``/``--set`` use,
    each name as the slug it names."""
    kind, typed = resolved.who or ("with", ())
    names = [session.aliases.get(name.strip(), name) for name in typed]
    where = (resolved.set_ or "").strip()
    return cast_fields(
        session.lead,
        with_=names if kind == "with" else (),
        cast=names if kind == "cast" else (),
        set_=session.aliases.get(where, where),
    )


def keyed_by_id(request: ShotRequest, ids: Mapping[str, int]) -> ShotRequest:
    """``request`` with its cast and set named by id (``#12``) for its key: a slug can be
    renamed, an id cannot. A lead-only request has neither, so its key is as it always was."""
    if not request.cast and not request.set:
        return request

    def key(slug: str) -> str:
        return f"#{ids[slug]}" if slug in ids else slug

    cast = [key(slug) for slug in request.cast]
    return request.model_copy(update={"cast": cast, "set": key(request.set) if request.set else ""})


def member_names(spec: ShotList) -> set[str]:
    """Every member name the list types (``with``, ``cast``, ``set``, on any layer or axis),
    so the runner can look each up once, not once per shot."""
    layers: list[ShotFields] = [spec.defaults, *spec.shots]
    found: set[str] = set()
    for matrix in spec.matrices:
        layers += [matrix, *matrix.overrides]
        for name in CAST_FIELDS:
            for value in layer_value(matrix.axes, name) or []:
                found.update(names_of(value))
    for layer in layers:
        found.update(
            [*(layer.with_ or []), *(layer.cast or []), *([layer.set] if layer.set else [])]
        )
    return {name.strip() for name in found if name.strip()}


def _combinations(
    base: _Resolved, matrix: Matrix, loc: Loc
) -> Iterator[tuple[dict[str, AxisValue], _Resolved]]:
    """Axis combinations in a fixed order, minus exclusions, with matching overrides applied.

    The combination's own values are laid last so that nothing but the axis decides an axis
    field (the file check refuses overrides that try).
    """
    axes = matrix.axes.items()
    names = [name for name, _ in axes]
    for values in itertools.product(*(values for _, values in axes)):
        combo = dict(zip(names, values, strict=True))
        if any(_matches(rule, combo) for rule in matrix.exclude):
            continue
        resolved = base
        for index, rule in enumerate(matrix.overrides):
            if _matches(rule.when, combo):
                resolved = resolved.apply(rule, (*loc, "overrides", index))
        resolved = resolved.copy()
        for axis, value in combo.items():
            if axis in WHO:
                resolved.who = (axis, tuple(names_of(value)))
            elif axis == "set":
                resolved.set_ = axis_text(value)
            else:
                resolved.request[axis] = axis_text(value)
        yield combo, resolved


def _matches(rule: Mapping[str, AxisValue], combo: Mapping[str, AxisValue]) -> bool:
    """Whether a ``when``/``exclude`` entry matches: every axis it lists has its value (a
    list of names compares as its text, so ``[rin]`` and ``rin`` match alike)."""
    return bool(rule) and all(
        axis in combo and axis_text(combo[axis]) == axis_text(value) for axis, value in rule.items()
    )


def _resolve_ref(base_dir: Path, ref: str) -> Path:
    path = Path(ref).expanduser()
    return (path if path.is_absolute() else base_dir / path).resolve()


def _digest(cache: dict[Path, str], path: Path) -> str:
    """Refs enter the key by content, so replacing a reference image re-makes its shots."""
    if path not in cache:
        cache[path] = sha256_file(path)
    return cache[path]
