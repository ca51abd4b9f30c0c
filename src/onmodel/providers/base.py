"""The one interface every image source plugs into.

Providers turn a fully composed :class:`GenerationRequest` into bytes and metadata. They never
touch the database or the blob store: the studio writes a pending row before calling them and
records whatever they return or raise, so a crash or an API error never loses a request.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from onmodel.composer import SHOT_TEMPLATE
from onmodel.errors import OnmodelError
from onmodel.settings import Settings, is_set
from onmodel.sheet import ModelSheet, ShotRequest

if TYPE_CHECKING:
    from onmodel.capabilities import ModelCapability, PriceTable

ImageKind = Literal["anchor", "shot", "view"]

VIEWS: tuple[str, ...] = ("front", "three-quarter", "side", "back")
"""The reference views a turnaround makes (``GenerationRequest.view``), in sheet order."""

PREVIEW_ONLY_PARAMS: tuple[str, ...] = ("drift",)
"""Test knobs only an offline provider draws (the preview's ``drift``, which makes a take go
off model on purpose). No API takes them, so every other provider refuses them before a
request is recorded: a real, billed image must never carry a fault injected for a test."""


TABLE_PARAMS: frozenset[str] = frozenset(
    {
        *("model", "size", "quality", "background", "output_format", "output_compression"),
        *("input_fidelity", "moderation", "n", "partial_images"),
    }
)
"""The parameters the model table itself checks, for every provider (a model that takes no
quality refuses ``quality`` there, in the table's words)."""


def preview_only_problems(params: Mapping[str, Any]) -> list[str]:
    """The refusal every provider but the preview gives a request that carries a test knob."""
    return [
        f"{name} is a preview-only test parameter (no API draws it; use --provider preview)"
        for name in PREVIEW_ONLY_PARAMS
        if params.get(name) is not None
    ]


@dataclass(frozen=True)
class InputImage:
    """An image sent along with a request, in the order it is sent."""

    role: str  # "anchor", "parent", "view" or "extra"
    path: Path
    sha256: str
    mime: str
    image_id: int | None = None
    member_id: int | None = None  # an anchor's or a view's cast member (``CastMember.id``)
    view: str = ""  # which view a "view" shows (one of VIEWS)


@dataclass(frozen=True)
class CastMember:
    """Someone (or somewhere) a request shows: its own sheet, so a provider that draws (the
    preview) draws each member as itself, and a conversation knows whom it has been shown."""

    id: int
    slug: str
    name: str
    kind: str  # character, creature, prop or set (onmodel.kinds)
    sheet: ModelSheet = field(default_factory=ModelSheet)


@dataclass(frozen=True)
class PastTurn:
    """One earlier turn of a conversation a stateless chat API is sent again in full (see
    :attr:`Provider.history_turns`): what was asked, and the picture (with whatever the
    provider kept of its answer in ``returned``) that came back."""

    image_id: int
    prompt: str
    output: InputImage
    returned: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GenerationRequest:
    """Everything a provider needs; the studio has already composed and validated it."""

    kind: ImageKind
    prompt: str
    model: str
    params: dict[str, Any]
    inputs: tuple[InputImage, ...] = ()
    sheet: ModelSheet = field(default_factory=ModelSheet)
    request: ShotRequest = field(default_factory=ShotRequest)
    character_name: str = ""
    subject_kind: str = "character"
    """What ``character_name`` is (``onmodel.kinds``): an anchor of a set is an empty place,
    of a creature an animal; a shot of several says each member's kind in :attr:`cast`."""
    instructions: str | None = None
    previous_response_id: str | None = None
    variation: int = 1
    """Which of ``variations`` identical requests this is: a shot list's ``repeat: 3`` sends
    the same request as takes 1, 2 and 3 (a deterministic provider draws each differently)."""
    variations: int = 1
    view: str = ""
    """Which side of the character a ``view`` request shows, one of :data:`VIEWS` (a
    turnaround's reference views); empty for anchors and shots."""
    cast: tuple[CastMember, ...] = ()
    """Who the shot shows, figures in order and then the set; empty for anchors and views
    (their character alone). ``inputs`` name their member by ``member_id``."""
    introduced: frozenset[int] = frozenset()
    """The members whose anchors the conversation this request continues has already been
    shown (empty: a new conversation). A provider that keeps a conversation sends only the
    other members' anchors and views, on the turn where each first appears."""

    history: tuple[PastTurn, ...] = ()
    """The conversation's earlier turns, oldest first, for a provider that resends them
    (:attr:`Provider.history_turns`); the last is the parent. Empty: a new conversation."""

    def conversation_cast(self) -> list[int]:
        """Everyone the conversation has been shown once this turn is taken: what a
        conversation-keeping provider records (``conversation_cast`` in its sent parameters)
        for the next turn's :attr:`introduced`."""
        return sorted(self.introduced | {member.id for member in self.cast})

    def conversation_turns(self) -> list[int]:
        """The turns this one is sent after, oldest first: what a provider that resends its
        history records (``conversation_turns`` in its sent parameters) for the next turn's
        :attr:`history`."""
        return [turn.image_id for turn in self.history]

    def new_to_conversation(self, item: InputImage) -> bool:
        """Whether ``item`` shows a member the conversation has not been shown yet."""
        return item.member_id is not None and item.member_id not in self.introduced


@dataclass
class GenerationResult:
    """What came back. ``data`` are the image bytes exactly as the provider produced them."""

    data: bytes
    format: str
    sent_params: dict[str, Any]
    revised_prompt: str | None = None
    gen_id: str | None = None
    response_id: str | None = None
    usage: dict[str, Any] | None = None
    returned: dict[str, Any] = field(default_factory=dict)


@dataclass
class ManualResult:
    """A provider that cannot call anything (the ChatGPT app route) returns messages to paste.

    ``attach`` are the inputs the user attaches to the first message, in order (the anchors
    of the members the conversation has not been shown yet), each under
    :func:`attachment_name`; empty when nothing is to be attached.
    """

    messages: list[str]
    sent_params: dict[str, Any] = field(default_factory=dict)
    attach: tuple[InputImage, ...] = ()


def attachment_name(item: InputImage, cast: tuple[CastMember, ...], fallback: str) -> str:
    """The file name a manual route's user attaches ``item`` under (``max-anchor.png``): its
    member's slug (``fallback``, the shot's character, for an input of no member) and role,
    so a message can say which file is whom."""
    slug = next((m.slug for m in cast if m.id == item.member_id), fallback)
    return f"{slug}-{item.role}{item.path.suffix}"


class ProviderError(OnmodelError):
    """A provider call failed. ``kind`` says why, so the studio can record and report it."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        code: str | None = None,
        categories: list[str] | None = None,
        usage: dict[str, Any] | None = None,
        response_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind  # quota, moderation, auth, rate_limit, server, timeout, bad_response...
        self.code = code
        self.categories = categories or []
        self.usage = usage
        self.response_id = response_id
        self.retry_after = retry_after
        """Seconds the API asked to wait before trying again (a rate limit's Retry-After),
        after the provider's own bounded retries gave up; None when it said nothing."""


UNBILLED_FAILURES = frozenset(
    {"auth", "quota", "rate_limit", "server", "connection", "invalid_request", "config"}
)
"""Failures an API refuses before its model answers: they cost nothing, so a failed image or
check of one of these kinds with no usage is recorded at 0, not "of unknown cost" (a timeout,
a safety block or a cut-off answer may be billed)."""


@dataclass(frozen=True)
class ProviderStatus:
    """Whether a provider can be used now, and what to do when not (``onmodel providers``)."""

    configured: bool
    detail: str = ""


@dataclass(frozen=True)
class ProviderContext:
    """What the studio hands every provider it builds: the data folder's own tables.

    A provider reads no global configuration: ``Studio.open(home)`` checks a shot against
    ``home/models.yaml``, and the provider must decide from the same file.
    """

    models_file: Path | None = None  # the user's capability overrides; None: packaged only
    settings: Settings = field(default_factory=Settings.from_environment)

    def capability(self, model: str) -> ModelCapability | None:
        """The model's row (None for a model the table does not know).

        ``find`` rather than ``get``: the studio has already refused retired and unknown
        models, and a provider asked about one anyway sends the conservative request.
        """
        from onmodel.capabilities import load_capabilities

        try:
            return load_capabilities(self.models_file).find(model)
        except OnmodelError as exc:
            raise ProviderError(str(exc), kind="config") from exc


@dataclass(frozen=True)
class ParentTurn:
    """What a conversation-keeping provider needs to know about the image a shot continues."""

    in_session: bool  # the parent belongs to the shot's session (not the anchor)
    provider: str
    response_id: str | None


class Provider(ABC):
    """An image source, found by ``name`` (what sessions and ``--provider`` store).

    A provider declares what it is, and the core asks instead of comparing names: adding one
    is a new class registered under the ``onmodel.providers`` entry-point group, with no edit
    to the studio, the capability checks, the web pages or the CLI.
    """

    name: ClassVar[str]
    billed: ClassVar[bool] = True
    """Each image is paid for through this provider (free ones cost nothing, always)."""
    manual: ClassVar[bool] = False
    """Its shots wait, pending, for the user to ``attach`` the picture (never "stale")."""
    offline: ClassVar[bool] = False
    """Calls no API: requests are still checked against the model's rules, not its routes."""
    max_input_images: ClassVar[int] = 16
    """The most images (anchor, parent and references) one request can carry."""
    shot_template: ClassVar[str] = SHOT_TEMPLATE
    """The prompt template a shot is composed with."""
    key_env: ClassVar[str | None] = None
    """The environment variable that must hold an API key before a request can start (None:
    no key needed). The studio refuses a shot while :meth:`has_key` is False, before anything
    is recorded, and names this variable in the error."""
    also_key_env: ClassVar[tuple[str, ...]] = ()
    """Other variables the provider's SDK takes the key from (any one will do)."""
    own_params: ClassVar[tuple[str, ...] | None] = None
    """The parameters the provider takes beyond the table's (:data:`TABLE_PARAMS`): any
    other is refused in one line (``--param sed=42`` is a typo, not a shot that quietly
    ignores the seed). None: whatever its API takes passes through (OpenAI's routes)."""
    keeps_conversation: ClassVar[bool] = False
    """A shot continues the conversation its parent was made in (:meth:`conversation`,
    :attr:`history_turns`), so only what is new is attached."""
    history_turns: ClassVar[int] = 0
    """How many earlier turns a provider whose API keeps no conversation of its own is sent
    again with each shot (:attr:`GenerationRequest.history`); 0: none."""
    default_model: ClassVar[str | None] = None
    """The model a session or character made with this provider uses when none is named
    (None: onmodel's default)."""

    def __init__(self, context: ProviderContext | None = None) -> None:
        self.context = context or ProviderContext()

    def has_key(self) -> bool:
        """Whether the key :attr:`key_env` names is set; True for providers that need none.

        Read from the environment (through :mod:`onmodel.settings`, its one reader), because a
        plugin's variable is its own; a provider whose key the settings know overrides this to
        ask them.
        """
        return self.key_env is None or any(is_set(name) for name in self.key_names())

    def key_names(self) -> tuple[str, ...]:
        """Every variable the key can be set in, the one named in errors first."""
        return (self.key_env, *self.also_key_env) if self.key_env else ()

    def status(self) -> ProviderStatus:
        """Whether it can be used now; by default, whether its key is set. Cheap, and never
        spends anything (``onmodel providers`` asks every provider)."""
        if self.has_key():
            return ProviderStatus(True, "key set" if self.key_env else "needs no key")
        return ProviderStatus(False, f"set {' or '.join(self.key_names())}")

    def preflight(self) -> None:  # noqa: B027 - optional: most providers have nothing to check
        """Refuse, before a shot is recorded, what would make every request fail (a malformed
        setting of the provider's own): raise :class:`ProviderError` (kind ``config``). The
        key is checked separately (:meth:`has_key`)."""

    def estimate_max_cost(self, request: GenerationRequest, prices: PriceTable) -> Decimal | None:
        """The most ``request`` can cost, before it is sent (``--max-cost``, budgets); None
        when unknown, so a budget refuses rather than guess. Free providers cost nothing; by
        default the price table's token accounting (OpenAI's) is asked, counting every input
        (a conversation may attach fewer: an upper bound)."""
        if not self.billed:
            return Decimal(0)
        from onmodel.capabilities import estimate_max_cost

        return estimate_max_cost(
            request.model,
            request.params.get("quality"),
            request.params.get("size"),
            len(request.inputs),
            len(request.prompt),
            prices=prices,
        )

    def request_problems(self, request: GenerationRequest) -> list[str]:
        """What is wrong with this request for this provider and model beyond the table's
        rules (a parameter one model of the provider's takes and another does not; an
        anchor sent to a workflow that expects images), asked before anything is recorded;
        one line each. None by default."""
        return []

    def cost(
        self,
        model: str,
        usage: Mapping[str, Any] | None,
        returned: Mapping[str, Any],
        prices: PriceTable,
    ) -> Decimal | None:
        """What a finished request cost, from what the API returned; None when unknown.
        Free providers cost nothing; by default the token ``usage`` is priced."""
        if not self.billed:
            return Decimal(0)
        from onmodel.capabilities import estimate_cost

        return estimate_cost(model, usage, prices)

    def resolve_params(self, params: Mapping[str, Any], base: Path) -> dict[str, Any]:
        """``params`` as they are to be stored: a file a parameter names (a ComfyUI
        ``workflow``) made absolute against ``base``, the folder the user named it from (the
        current one, or a shot list's), so a session's default still finds it when a later
        shot runs from elsewhere. As given by default."""
        return dict(params)

    def input_limit(self, params: Mapping[str, Any]) -> int:
        """The most images one request with these parameters can carry: by default
        :attr:`max_input_images`; a provider whose limit depends on a parameter (a ComfyUI
        workflow's image slots) says so here, so a shot's views are fitted to it."""
        return self.max_input_images

    def api_route(self, n_input_images: int) -> str | None:
        """The API route a request with that many input images takes (None: no API call)."""
        return None

    def param_problems(self, params: Mapping[str, Any], capability: ModelCapability) -> list[str]:
        """What is wrong with ``params`` for this provider and ``capability``'s model beyond
        the table's own rules (a parameter one of its models takes and another does not);
        asked of a session's defaults when they are set, and of every shot.

        The capability check asks this of the provider a request goes to, so a provider that
        draws a test knob (the preview) checks its shape, and every other refuses it; a
        provider that declares :attr:`own_params` refuses any other parameter.
        """
        problems = preview_only_problems(params)
        if self.own_params is not None:
            known = {*TABLE_PARAMS, *self.own_params, *PREVIEW_ONLY_PARAMS}
            unknown = sorted(k for k, v in params.items() if v is not None and k not in known)
            if unknown:
                takes = ", ".join(self.own_params) or "none of its own"
                problems.append(
                    f"{self.name} does not take {', '.join(unknown)} (it takes {takes}, "
                    "besides size)"
                )
        return problems

    def conversation(
        self, *, instructions: str | None, parent: ParentTurn, started: Callable[[], bool]
    ) -> dict[str, Any]:
        """``instructions`` and ``previous_response_id`` for the plan; none by default.

        ``started`` says whether the session already has shots (a query, asked only when the
        answer matters).
        """
        return {}

    def attached(self, request: GenerationRequest) -> tuple[InputImage, ...]:
        """The inputs this request attaches, in order: all of them by default. A provider
        that keeps a conversation attaches only what the conversation has not seen, and
        says so here, so the prompt numbers the images the model is actually given."""
        return request.inputs

    def warm_up(self) -> None:  # noqa: B027 - optional: most providers have nothing to load
        """Load now what the first request would otherwise wait for; nothing by default."""

    @abstractmethod
    def generate(self, request: GenerationRequest) -> GenerationResult | ManualResult: ...
