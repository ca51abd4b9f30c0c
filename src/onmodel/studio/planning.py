"""Planning: a request becomes a composed prompt, checked against the model and the budget.

Nothing here records or spends anything. A plan says exactly what will be sent (prompt,
parameters, images in order) and what it may cost, so a mistake is refused before the
pipeline writes its pending row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onmodel.blobs import sha256_bytes
from onmodel.errors import (
    BudgetError,
    InvalidImageError,
    MissingKeyError,
    UsageError,
    ValidationError,
)
from onmodel.handles import Character, Image, Session
from onmodel.imagefile import MIME_TYPES, read_image_file
from onmodel.kinds import SET
from onmodel.limits import check_amount
from onmodel.providers import offline_provider_name
from onmodel.providers.base import (
    CastMember,
    GenerationRequest,
    ImageKind,
    InputImage,
    ParentTurn,
    PastTurn,
    Provider,
)
from onmodel.sheet import ShotRequest
from onmodel.status import ImageStatus
from onmodel.store import cast as cast_store
from onmodel.store import queries
from onmodel.studio.members import Roster, ShotCast, roster, shot_cast
from onmodel.studio.plans import ShotPlan
from onmodel.studio.turnaround import views_of

if TYPE_CHECKING:
    from onmodel.capabilities import ModelCapability
    from onmodel.studio.core import Studio


class Planning:
    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    def planner(
        self, session: Session, *, from_image: int | str | Image | None = None
    ) -> ShotPlanner:
        """See :meth:`Studio.planner`."""
        character = session.character
        lead = self.member_refs(character)
        parent = self._parent_for(session, character, lead.anchor, from_image)
        return ShotPlanner(
            self,
            session,
            character,
            lead.anchor,
            parent,
            self.lineage_inputs(lead.anchor, parent, member_id=character.id),
            from_head=from_image is None,
            views=lead.views,
            roster=roster(self.studio, session),
        )

    def member_refs(self, member: Character) -> MemberRefs:
        """A cast member's anchor and turnaround views, their files checked, as a shot sends
        them; refused when it has no finished anchor yet."""
        anchor = self.anchor_of(member)
        return MemberRefs(
            member,
            anchor,
            tuple(
                self._input_from_image(view, "view", member_id=member.id, view=view.request.view)
                for view in views_of(self.studio, anchor)
            ),
            self._input_from_image(anchor, "anchor", member_id=member.id),
        )

    def anchor_of(self, character: Character) -> Image:
        """The character's anchor, refused unless it has a picture to draw from (shots and
        turnaround views both start there)."""
        if character.row.anchor_image_id is None:
            raise UsageError(
                f"{character.kind} {character.slug!r} has no anchor image yet: make one with "
                f"`onmodel character anchor IMAGE` or import one"
            )
        anchor = self.studio.image(character.row.anchor_image_id)
        if not anchor.succeeded:
            raise UsageError(
                f"the anchor of {character.slug!r} (image {anchor.id}) is {anchor.status}; "
                "retry it first"
            )
        return anchor

    def plan(
        self,
        *,
        kind: ImageKind,
        character: Character,
        session: Session | None,
        parent: Image | None,
        request: ShotRequest,
        provider: str,
        model: str,
        params: dict[str, Any],
        template: str,
        inputs: tuple[InputImage, ...] = (),
        anchor: Image | None = None,
        cast: Sequence[MemberRefs] = (),
        turn: Mapping[str, Any] | None = None,
        introduced: frozenset[int] = frozenset(),
        parent_shows: Sequence[str] = (),
        history: tuple[PastTurn, ...] = (),
    ) -> ShotPlan:
        """Compose the prompt and check the request; raises on anything the model refuses,
        and then on a provider that cannot start (no API key), so nothing is recorded for it.
        The key comes last: what is wrong with the request itself is worth saying first.

        ``cast``: who a shot shows, figures in order and then its set (empty: ``character``
        alone, as anchors and views are). ``turn``: the conversation it continues
        (``instructions``, ``previous_response_id``: :meth:`conversation`), whose members
        (``introduced``) the provider does not attach again, so the prompt numbers only
        what this turn attaches. ``parent_shows``: who the parent shows, when not this
        shot's cast (a shot of Mia alone after one of Mia and Rin). ``history``: the
        earlier turns a stateless chat API is sent again (:meth:`history`)."""
        source = self.studio.provider(provider)
        turn = dict(turn or {})
        members = tuple(refs.member for refs in cast)
        probe = GenerationRequest(
            kind=kind,
            prompt="",
            model=model,
            params=params,
            inputs=inputs,
            instructions=turn.get("instructions"),
            previous_response_id=turn.get("previous_response_id"),
            cast=members,
            introduced=introduced,
            history=history,
        )
        attached = source.attached(probe)
        context = self.template_context(character, anchor, request, session)
        # how many turnaround views go with the anchor, so a prompt can say what they are
        context["views"] = sum(1 for item in inputs if item.role == "view")
        context.update(cast_context(cast, attached, parent_shows))
        # the series' style: the lead's, even in a shot that leaves the lead out
        sheets = [character.sheet, *(refs.character.sheet for refs in cast)]
        context["style"] = next((sheet.style for sheet in sheets if sheet.style), "")
        rendered = self.studio.composer.render(template, context)
        warnings = self.validate(provider, model, params, rendered.text, len(inputs))
        composed = replace(probe, prompt=rendered.text)
        problems = source.request_problems(composed)
        if problems:
            raise ValidationError(f"{model}: " + "; ".join(problems))
        estimate = self._max_cost(source, composed)
        self.ready(provider)
        return ShotPlan(
            kind=kind,
            character_id=character.row.id or None,  # 0: a new character, not written yet
            session_id=session.id if session else None,
            parent_id=parent.id if parent else None,
            provider=provider,
            model=model,
            params=params,
            request=request,
            rendered=rendered,
            inputs=inputs,
            # the first figure: the lead, unless the shot leaves the lead out (--cast rin)
            sheet=cast[0].character.sheet if cast else character.sheet,
            character_name=cast[0].character.name if cast else character.name,
            subject_kind=cast[0].character.kind if cast else character.kind,
            cast=members,
            introduced=introduced,
            history=history,
            instructions=turn.get("instructions"),
            previous_response_id=turn.get("previous_response_id"),
            warnings=tuple(warnings),
            estimated_max_cost=None if estimate is None else str(estimate),
        )

    def ready(self, name: str) -> Provider:
        """The named provider, refused while it lacks the API key it declares it needs.

        Asked of the provider (:attr:`Provider.key_env`), never decided by its name, so a
        plugin that needs a key is refused the same way.
        """
        provider = self.studio.provider(name)
        if not provider.has_key():
            variable = provider.key_env or "its API key"
            raise MissingKeyError(
                f"provider {name!r} needs an API key and {variable} is not set: "
                f"export {variable}=... (or use a provider that needs none, such as "
                f"{offline_provider_name()!r})",
                variable=variable,
            )
        provider.preflight()
        return provider

    def template_context(
        self,
        character: Character,
        anchor: Image | None,
        request: ShotRequest,
        session: Session | None,
    ) -> dict[str, Any]:
        return {
            "character": {
                "name": character.name,
                "slug": character.slug,
                "kind": character.kind,
                "description": character.description,
                "sheet": character.sheet.model_dump(),
            },
            "anchor": {
                "revised_prompt": anchor.revised_prompt if anchor else None,
                "gen_id": anchor.gen_id if anchor else None,
            },
            "request": request.model_dump(),
            "session": {"title": session.title if session else ""},
            "include_outfit": not request.outfit,
        }

    def default_model(self, provider: str) -> str:
        """The model a provider's new character, session or shot uses when none is named:
        the provider's own (:attr:`Provider.default_model`), or onmodel's."""
        from onmodel.capabilities import default_model

        return self.studio.provider(provider).default_model or default_model()

    def model_for(self, provider: str, model: str | None, session_model: str) -> str:
        """The model a shot uses: the one named, else the session's, unless the shot goes to
        another provider whose API does not serve the session's model (a session of
        gpt-image-2 shot once ``--provider flux``): then that provider's default."""
        if model:
            return model
        from onmodel.capabilities import load_capabilities

        source = self.studio.provider(provider)
        found = load_capabilities(self.studio.paths.models_file).find(session_model)
        route = source.api_route(1)
        if found is None or route is None or route in found.routes:
            return session_model  # unknown models are refused by the check, with its words
        return self.default_model(provider)

    def capability(self, model: str) -> ModelCapability:
        """The model's row; retired and unknown models are refused, judged by the same day
        as :meth:`validate` judges shutdown warnings."""
        from onmodel.capabilities import load_capabilities

        return load_capabilities(self.studio.paths.models_file).get(model, today=date.today())

    def validate(
        self, provider: str, model: str, params: dict[str, Any], prompt: str | None, n_inputs: int
    ) -> list[str]:
        """Check the request against the model's rules before anything is recorded or paid;
        ``prompt`` None checks the parameters alone (a session's defaults)."""
        from onmodel.capabilities import validate_request

        return validate_request(
            self.capability(model),
            route=provider,
            params=params,
            prompt=prompt,
            n_input_images=n_inputs,
            today=date.today(),
        )

    def check_max_cost(self, plan: ShotPlan, limit: Decimal) -> None:
        """Refuse a plan whose worst case could cost more than ``limit`` (or is unknown)."""
        limit = check_amount(limit, "--max-cost")
        if plan.estimated_max_cost is None:
            raise BudgetError(
                f"the cost of a {plan.model} shot is unknown (no price in the table), so it "
                f"cannot be kept under --max-cost {limit}; add a price to "
                f"{self.studio.paths.prices_file}"
            )
        if Decimal(plan.estimated_max_cost) > limit:
            quality = plan.params.get("quality")
            how = f", {quality} quality" if quality else ""
            raise BudgetError(
                f"this shot could cost up to ${plan.estimated_max_cost} ({plan.model}{how}), "
                f"over --max-cost {limit}"
            )

    def read_refs(
        self, refs: Sequence[Path]
    ) -> tuple[tuple[InputImage, ...], list[tuple[bytes, str]]]:
        """The user's extra reference files as inputs, read and checked.

        The files are returned to be stored (see :meth:`keep_refs`) only once the whole shot
        has passed every check, so a refused shot leaves no reference files behind.
        """
        extras: list[InputImage] = []
        files: list[tuple[bytes, str]] = []
        for data, info in (read_image_file(ref) for ref in refs):
            sha256 = sha256_bytes(data)
            # where the stored copy's local file will be once keep_refs puts it (a remote
            # store's put fills its read cache, so the provider finds the file there)
            path = self.studio.blobs.path_for(sha256, info.format)
            extras.append(InputImage("extra", path, sha256, info.mime))
            files.append((data, info.format))
        return tuple(extras), files

    def keep_refs(self, files: list[tuple[bytes, str]]) -> None:
        for data, fmt in files:
            self.studio.blobs.put(data, fmt)

    def conversation(self, session: Session, provider: Provider, parent: Image) -> dict[str, Any]:
        """Instructions and conversation state, for the providers that keep a conversation."""
        return provider.conversation(
            instructions=session.row.instructions or None,
            parent=ParentTurn(
                in_session=parent.row.session_id == session.id,
                provider=parent.row.provider,
                response_id=parent.row.response_id,
            ),
            # with this provider: a session that switches to ChatGPT starts a new conversation
            started=lambda: queries.session_has_shot(self.studio.engine, session.id, provider.name),
        )

    def introduced(
        self, session: Session, route: str, parent: Image, lead: Character
    ) -> frozenset[int]:
        """The members a conversation continued from ``parent`` has already been shown (see
        :attr:`GenerationRequest.introduced`): what the parent's turn recorded, or, for a turn
        made before casts were recorded, the lead, whose anchor opened it. A parent from
        outside the session or from another route starts a new conversation: no one."""
        if parent.session_id != session.id or parent.provider != route:
            return frozenset()
        known = parent.params.get("conversation_cast")
        if isinstance(known, list) and all(isinstance(each, int) for each in known):
            return frozenset(known)
        return frozenset({lead.id})

    def history(self, session: Session, provider: Provider, parent: Image) -> tuple[PastTurn, ...]:
        """The earlier turns a provider whose API keeps no conversation is sent again
        (:attr:`Provider.history_turns`), oldest first, ending with the parent.

        Each turn records the turns it was sent (``conversation_turns`` in its sent
        parameters), so the chain is read from the parent's row and the turns fetched in one
        query: no walk up the lineage. A parent from outside the session (the anchor), from
        another provider, or without a picture starts a new conversation.
        """
        most = provider.history_turns
        if (
            most <= 0
            or parent.session_id != session.id
            or parent.provider != provider.name
            or not parent.succeeded
        ):
            return ()
        earlier = parent.params.get("conversation_turns")
        kept = [each for each in earlier or () if isinstance(each, int)]
        ids = [*kept[max(0, len(kept) - most + 1) :], parent.id]
        found = self.studio.lookups.images_by_id(ids)
        turns = [
            PastTurn(
                image.id,
                image.row.prompt,
                self._input_from_image(image, "parent"),
                dict(image.row.returned or {}),
            )
            for image in (found.get(each) for each in ids)
            if image is not None and image.succeeded and image.sha256 is not None
        ]
        return tuple(turns)

    def parent_shows(self, parent: Image, cast: ShotCast) -> list[str]:
        """Who the parent picture shows, by name, when that is not who this shot shows (its
        prompt then says so, rather than invite the model to keep everyone); empty when the
        same, or when the parent is an anchor (never sent as a parent)."""
        if parent.kind not in ("shot", "edit", "import") or parent.session_id is None:
            return []
        ids = cast_store.cast_of(self.studio.engine, [parent.id]).get(parent.id, [])
        if set(ids) == {member.id for member in cast.everyone}:
            return []
        found = self.studio.lookups.characters_by_id(ids)
        return [found[each].name for each in ids if each in found]

    def _parent_for(
        self,
        session: Session,
        character: Character,
        anchor: Image,
        from_image: int | str | Image | None,
    ) -> Image:
        studio = self.studio
        if from_image is None:
            head_id = studio.session(session.id).row.head_image_id
            return studio.image(head_id) if head_id is not None else anchor
        parent = studio.image(from_image)
        if parent.row.character_id != character.id:
            raise UsageError(
                f"image {parent.id} belongs to another character; "
                f"branch only from images of {character.slug!r}"
            )
        if not parent.succeeded:
            raise UsageError(f"image {parent.id} is {parent.status}: branch from a finished image")
        return parent

    def lineage_inputs(
        self, anchor: Image, parent: Image, *, member_id: int | None = None
    ) -> tuple[InputImage, ...]:
        """Anchor first (the strongest consistency lever), then the parent when it differs
        (the character's turnaround views follow them, as room allows: :class:`ShotPlanner`).

        A parent still waiting for its picture (a manual shot, see :meth:`conversation_tip`)
        has no file to send; it is already in the conversation the shot continues.
        """
        inputs = [self._input_from_image(anchor, "anchor", member_id=member_id)]
        if parent.id != anchor.id and parent.status != ImageStatus.PENDING:
            inputs.append(self._input_from_image(parent, "parent"))
        return tuple(inputs)

    def conversation_tip(self, session: Session, start: Image, provider: str) -> Image:
        """Where a manual shot continues the session's conversation: ``start`` (the head),
        or the newest of the pending ``provider`` shots that already follow it.

        In the chat app, a message asked for before the previous picture was saved still
        comes after it; so a second pending shot is the child of the first, not its sibling,
        and ``attach`` completes them in that order. Each step reads the children of one
        image: a conversation waits for a person, so it is a few steps long.
        """
        tip = start
        while following := [
            child
            for child in self.studio.children(tip)
            if child.session_id == session.id
            and child.status == ImageStatus.PENDING
            and child.provider == provider
        ]:
            tip = max(following, key=lambda child: child.id)
        return tip

    def _input_from_image(
        self, image: Image, role: str, *, member_id: int | None = None, view: str = ""
    ) -> InputImage:
        sha256, fmt = image.row.sha256, image.row.format
        if sha256 is None or fmt is None:
            raise UsageError(f"image {image.id} has no file to send")
        if not self.studio.blobs.verify(sha256, fmt):
            raise InvalidImageError(
                f"the file of image {image.id} is missing or damaged: {image.stored_at}"
            )
        path = self.studio.blobs.local_path(sha256, fmt)  # a remote store's copy: just verified
        return InputImage(role, path, sha256, MIME_TYPES[fmt], image.id, member_id, view)

    def _max_cost(self, source: Provider, request: GenerationRequest) -> Decimal | None:
        from onmodel.capabilities import load_prices

        return source.estimate_max_cost(request, load_prices(self.studio.paths.prices_file))


@dataclass(frozen=True)
class MemberRefs:
    """A cast member as a shot sends it: its anchor, then its turnaround views."""

    character: Character
    anchor: Image
    views: tuple[InputImage, ...]
    anchor_input: InputImage

    @property
    def member(self) -> CastMember:
        character = self.character
        return CastMember(
            character.id, character.slug, character.name, character.kind, character.sheet
        )


@dataclass(frozen=True)
class ShotPlanner:
    """Plans shots from one session and one parent image (see :meth:`Studio.planner`).

    The session, its lead, the lead's anchor and the parent are looked up, and their files
    checked, when the planner is made rather than for every shot: a batch plans hundreds of
    shots from the same ones, and those lookups were most of the time each plan took. Other
    members are looked up the first time a shot shows them, then kept. (The provider checks
    each file's digest again as it sends it.)
    """

    planning: Planning
    session: Session
    character: Character
    anchor: Image
    parent: Image
    inputs: tuple[InputImage, ...]  # the lead's anchor, then the parent when it differs
    from_head: bool = True  # no image chosen: a manual shot continues its conversation
    views: tuple[InputImage, ...] = ()  # the lead's turnaround views, attached if room
    roster: Roster | None = None  # the session's cast, read once; None: read when needed
    members: dict[int, MemberRefs] = field(default_factory=dict, compare=False)
    # who a parent shows, by (parent, this shot's cast): a batch reads it once per cast
    parents_show: dict[tuple[int, ...], list[str]] = field(default_factory=dict, compare=False)

    def plan(
        self,
        request: ShotRequest,
        *,
        refs: Sequence[Path] = (),
        provider: str | None = None,
        model: str | None = None,
        params: dict[str, Any] | None = None,
        max_cost: Decimal | None = None,
    ) -> ShotPlan:
        """Compose and validate a shot; see :meth:`Studio.plan_shot`."""
        planning, session = self.planning, self.session
        route = provider or session.provider
        source = planning.studio.provider(route)
        cast = shot_cast(planning.studio, self.roster or roster(planning.studio, session), request)
        shown = [self._refs(member) for member in cast.everyone]
        parent, lineage = self.parent, self.inputs
        if source.manual and self.from_head:
            parent = planning.conversation_tip(session, self.parent, route)
            if parent.id != self.parent.id:
                lineage = planning.lineage_inputs(self.anchor, parent, member_id=self.character.id)
        chosen_model = planning.model_for(route, model, session.model)
        merged = {**session.row.params, **source.resolve_params(params or {}, Path.cwd())}
        most = min(source.input_limit(merged), planning.capability(chosen_model).max_input_images)
        extras, ref_files = planning.read_refs(refs)
        parents = [item for item in lineage if item.role == "parent"]
        inputs, dropped = fit_inputs(
            anchors=[refs.anchor_input for refs in shown],
            parents=parents,
            views=[view for refs in shown for view in refs.views],
            extras=list(extras),
            most=most,
            where=f"{chosen_model} through {route}",
            names=[
                *(f"the anchor of {refs.character.slug}" for refs in shown),
                *(f"the parent (image {item.image_id})" for item in parents),
                *(f"--ref {Path(ref).name}" for ref in refs),
            ],
        )
        plan = planning.plan(
            kind="shot",
            character=self.character,
            session=session,
            parent=parent,
            request=canonical_request(request, cast, self.character),
            provider=route,
            model=chosen_model,
            params=merged,
            template=source.shot_template,
            inputs=inputs,
            anchor=self.anchor,
            cast=shown,
            turn=planning.conversation(session, source, parent),
            introduced=planning.introduced(session, route, parent, self.character),
            parent_shows=self._parent_shows(parent, cast),
            history=planning.history(session, source, parent),
        )
        note = views_left_out(dropped, shown)
        if note is not None:
            plan = replace(plan, warnings=(*plan.warnings, note))
        if max_cost is not None:
            planning.check_max_cost(plan, max_cost)
        planning.keep_refs(ref_files)
        return plan

    def _parent_shows(self, parent: Image, cast: ShotCast) -> list[str]:
        key = (parent.id, *(member.id for member in cast.everyone))
        if key not in self.parents_show:
            self.parents_show[key] = self.planning.parent_shows(parent, cast)
        return self.parents_show[key]

    def _refs(self, member: Character) -> MemberRefs:
        if member.id == self.character.id:
            return MemberRefs(member, self.anchor, self.views, self.inputs[0])
        if member.id not in self.members:
            self.members[member.id] = self.planning.member_refs(member)
        return self.members[member.id]


def fit_inputs(
    *,
    anchors: list[InputImage],
    parents: list[InputImage],
    views: list[InputImage],
    extras: list[InputImage],
    most: int,
    where: str,
    names: Sequence[str],
) -> tuple[tuple[InputImage, ...], list[InputImage]]:
    """The images a shot sends, in order: every member's anchor, then the parent, then the
    turnaround views, then the user's ``--ref`` files.

    Anchors, the parent and ``--ref`` files must all be sent: when they are more than the
    model takes (``most``), the shot is refused naming, in that order of priority, what did
    not fit (``names`` says what each required image is, in that order). Views fill the
    room that is left, the first members' first; the ones left out are returned second, for
    the plan to warn of.
    """
    required = [*anchors, *parents, *extras]
    if len(required) > most:
        left_out = names[most:]
        instead = "; or branch from an anchor (--from), which sends no parent" if parents else ""
        raise UsageError(
            f"this shot needs {len(required)} input images and {where} takes at most {most}: "
            f"{', '.join(left_out)} did not fit (anchors go first, then the parent, then "
            f"--ref files); show fewer members or send fewer --ref files{instead}"
        )
    room = most - len(required)
    return (*anchors, *parents, *views[:room], *extras), views[room:]


def views_left_out(views: Sequence[InputImage], cast: Sequence[MemberRefs]) -> str | None:
    """The warning for turnaround views a shot had no room for, by member, or None."""
    if not views:
        return None
    names = {refs.character.id: refs.character.name for refs in cast}
    by_member: dict[str, list[str]] = {}
    for view in views:
        by_member.setdefault(names.get(view.member_id or 0, "?"), []).append(view.view)
    listed = "; ".join(f"{name}: {', '.join(kinds)}" for name, kinds in by_member.items())
    return f"{len(views)} turnaround view(s) left out for room ({listed})"


def canonical_request(request: ShotRequest, cast: ShotCast, lead: Character) -> ShotRequest:
    """The request as recorded: its cast by slug, as resolved (a name or ``#id`` typed by
    the user becomes the member's slug), and the lead alone as the empty default, so that a
    shot of the lead is the same request, and the same shot-list key, as before casts."""
    figures = [member.slug for member in cast.figures]
    return request.model_copy(
        update={
            "cast": [] if figures == [lead.slug] else figures,
            "set": cast.set.slug if cast.set is not None else "",
        }
    )


def cast_context(
    cast: Sequence[MemberRefs], inputs: Sequence[InputImage], parent_shows: Sequence[str] = ()
) -> dict[str, Any]:
    """What a template needs to say who is in a shot and which attached image is whom.

    ``inputs`` are the images this turn attaches. ``cast``: the figures (characters,
    creatures, props) in order, each with its sheet and the numbers of its images; ``set``:
    the place, or None; ``images``: every attached image by number (1 is the first sent),
    its role and whose it is; ``earlier``: the members a continued conversation has already
    been shown, whose anchors this turn does not attach again; ``parent_shows``: who the
    parent shows, when not this shot's cast; ``ensemble``: more than one figure, a set or
    such a parent, the shots whose prompt must name each image.
    """
    by_member = {refs.character.id: refs for refs in cast}
    images: list[dict[str, Any]] = []
    numbers: dict[int, dict[str, list[int]]] = {}
    for number, item in enumerate(inputs, 1):
        refs = by_member.get(item.member_id) if item.member_id is not None else None
        images.append(
            {
                "number": number,
                "role": item.role,
                "view": item.view,
                "member": refs.character.name if refs else None,
                "kind": refs.character.kind if refs else None,
            }
        )
        if refs is not None:
            numbers.setdefault(refs.character.id, {}).setdefault(item.role, []).append(number)
    members = [
        {
            "name": refs.character.name,
            "slug": refs.character.slug,
            "kind": refs.character.kind,
            "description": refs.character.description,
            "sheet": refs.character.sheet.model_dump(),
            "anchor": {
                "revised_prompt": refs.anchor.revised_prompt,
                "gen_id": refs.anchor.gen_id,
            },
            "image": numbers.get(refs.character.id, {}).get("anchor", [None])[0],
            "views": numbers.get(refs.character.id, {}).get("view", []),
        }
        for refs in cast
    ]
    figures = [member for member in members if member["kind"] != SET]
    place = next((member for member in members if member["kind"] == SET), None)
    if not figures:
        return {"cast": [], "set": None, "images": images, "ensemble": False}
    return {
        # the first figure is who a one-figure template draws: the lead, unless left out
        "character": figures[0],
        "anchor": figures[0]["anchor"],
        "cast": figures,
        "set": place,
        "images": images,
        "earlier": [member["name"] for member in members if member["image"] is None],
        "parent_shows": list(parent_shows),
        "ensemble": len(figures) > 1 or place is not None or bool(parent_shows),
    }
