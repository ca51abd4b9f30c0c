"""The studio: the one object the CLI, the web server, batches and library users all hold.

It opens a data folder and hands out its parts, each in a module of its own: lookups
(characters, sessions, images, lineage), the cast (creating characters and sessions), planning,
the generation pipeline, costs, the current session, and the curation of a series (hiding and
purging, editing names, settings, heads, anchors and model sheets, annotations and listings).
Its methods are the public API; each is a short call into the part that does the work.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from onmodel.blobs import IN_USE_GRACE, Blobs, open_blobs
from onmodel.checkers import DEFAULT_CHECKER
from onmodel.composer import Composer
from onmodel.config import Paths, resolve_paths
from onmodel.errors import UsageError
from onmodel.handles import Character, Image, Reference, Session, TreeNode, cast_list
from onmodel.kinds import SET, check_kind
from onmodel.providers import get_provider
from onmodel.providers.base import Provider, ProviderContext
from onmodel.settings import Settings
from onmodel.sheet import ModelSheet, ShotRequest
from onmodel.store import queries
from onmodel.store.database import create_database_engine, upgrade
from onmodel.store.listing import ImageFilter, tags_of
from onmodel.store.records import CheckRecord
from onmodel.studio.annotations import annotate, tag
from onmodel.studio.cast import Cast
from onmodel.studio.checks import Checks
from onmodel.studio.costs import Breakdown, CostBreakdown, CostReport, Costs
from onmodel.studio.curation import Curation, PurgeReport
from onmodel.studio.editing import Editing, SheetProposal, SheetVersion
from onmodel.studio.listing import ListedImage, iter_images
from onmodel.studio.lookups import Lookups
from onmodel.studio.members import add_members, members, remove_member, sessions_casting
from onmodel.studio.pipeline import Delivery, Pipeline
from onmodel.studio.planning import Planning, ShotPlanner
from onmodel.studio.plans import ShotPlan
from onmodel.studio.retakes import RetakeReport, shoot_until_on_model
from onmodel.studio.state import CurrentSession
from onmodel.studio.turnaround import character_views, make_turnaround


@dataclass
class Studio:
    paths: Paths
    engine: Engine
    blobs: Blobs
    composer: Composer
    lookups: Lookups = field(init=False, repr=False)
    cast: Cast = field(init=False, repr=False)
    planning: Planning = field(init=False, repr=False)
    pipeline: Pipeline = field(init=False, repr=False)
    costs: Costs = field(init=False, repr=False)
    current: CurrentSession = field(init=False, repr=False)
    curation: Curation = field(init=False, repr=False)
    editing: Editing = field(init=False, repr=False)
    checks: Checks = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.lookups = Lookups(self)
        self.cast = Cast(self)
        self.planning = Planning(self)
        self.pipeline = Pipeline(self)
        self.costs = Costs(self)
        self.current = CurrentSession(self.paths.state_file)
        self.curation = Curation(self)
        self.editing = Editing(self)
        self.checks = Checks(self)

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, home: Path | str | None = None) -> Studio:
        """Open (creating and migrating if needed) the data directory ``home``."""
        paths = resolve_paths(home)
        settings = Settings.from_environment()
        blobs = open_blobs(settings.blobs_url, paths.home, cache_mb=settings.blobs_cache_mb)
        paths.home.mkdir(parents=True, exist_ok=True)
        engine = create_database_engine(paths.database_url)
        upgrade(engine)
        return cls(
            paths=paths,
            engine=engine,
            blobs=blobs,
            composer=Composer(paths.templates),
        )

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Studio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def provider(self, name: str) -> Provider:
        """The named provider, reading this studio's capability table (``home/models.yaml``)."""
        return get_provider(name, ProviderContext(models_file=self.paths.models_file))

    # ------------------------------------------------------------------ characters

    def create_character(
        self,
        name: str,
        *,
        prompt: str,
        sheet: ModelSheet | Path | Mapping[str, Any] | None = None,
        slug: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        params: dict[str, Any] | None = None,
        strict: bool = False,
        kind: str = "character",
    ) -> Character:
        """Create a character and generate its anchor image on a plain background.

        ``kind``: ``character``, ``creature``, ``prop`` or ``set`` (a location, whose anchor
        is an establishing shot of the empty place); each is made, sheeted and cast alike.

        Everything is checked before the character is written; once it is, a failed anchor is
        a recorded failure the user can retry, not a vanished character. ``strict`` raises
        :class:`~onmodel.studio.cast.AnchorHygieneError` for an anchor that is a poor
        reference (busy background, cut off, small); the paid-for anchor is kept.
        """
        return self.cast.create_character(
            name,
            prompt=prompt,
            sheet=sheet,
            slug=slug,
            provider=provider,
            model=model,
            params=params,
            strict=strict,
            kind=kind,
        )

    def import_character(
        self,
        name: str,
        image: Path,
        *,
        prompt: str = "",
        gen_id: str | None = None,
        revised_prompt: str | None = None,
        sheet: ModelSheet | Path | Mapping[str, Any] | None = None,
        slug: str | None = None,
        strict: bool = False,
        kind: str = "character",
    ) -> Character:
        """Adopt an image the user already has (say, from ChatGPT) as a character's anchor
        (or a creature's, a prop's, a set's: ``kind``); ``strict`` refuses a poor reference
        before anything is written."""
        return self.cast.import_character(
            name,
            image,
            prompt=prompt,
            gen_id=gen_id,
            revised_prompt=revised_prompt,
            sheet=sheet,
            slug=slug,
            strict=strict,
            kind=kind,
        )

    def character(self, ref: str | int | Character) -> Character:
        return self.lookups.character(ref)

    def characters(self, *, hidden: bool = False, kind: str | None = None) -> list[Character]:
        """The shown characters or, ``hidden``, the hidden ones; ``kind``: of that kind only
        (``character``, ``creature``, ``prop``, ``set``)."""
        found = self.lookups.characters(hidden=hidden)
        return found if kind is None else [c for c in found if c.kind == check_kind(kind)]

    # ------------------------------------------------------------------ sessions

    def start_session(
        self,
        character: str | int | Character,
        *,
        title: str = "",
        model: str | None = None,
        provider: str | None = None,
        params: dict[str, Any] | None = None,
        slug: str | None = None,
        make_current: bool = True,
        with_: Sequence[str | int | Character] | str | None = (),
    ) -> Session:
        """Start a series for a character, its lead; ``with_`` names more members of its
        cast (characters, creatures, props, sets), each checked before the session is
        written. It becomes the current session by default."""
        lead = self.character(character)
        if lead.kind == SET:
            raise UsageError(
                f"{lead.slug!r} is a set: a session is led by a character, a creature or a "
                f"prop; start it with one and --with {lead.slug}, and its shots --set "
                f"{lead.slug}"
            )
        others = [self.character(each) for each in cast_list(with_)]  # unknown: no session
        if any(each.id == lead.id for each in others):
            raise UsageError(f"{lead.slug!r} is the lead; --with names the other members")
        twice = next((b for a, b in enumerate(others) if b.id in {o.id for o in others[:a]}), None)
        if twice is not None:
            raise UsageError(f"{twice.slug!r} is named twice in --with")
        session = self.cast.start_session(
            lead,
            title=title,
            model=model,
            provider=provider,
            params=params,
            slug=slug,
        )
        if others:
            add_members(self, session, others)
        if make_current:
            self.use_session(session)
        return session

    def sessions_casting(self, character: str | int | Character) -> list[Session]:
        """The sessions whose cast has ``character`` besides their lead, hidden or not."""
        return sessions_casting(self, self.character(character))

    def members(self, session: str | int | Session | None = None) -> list[Character]:
        """A session's cast besides its lead, in the order they were added."""
        return members(self, self.session(session))

    def add_to_cast(
        self,
        session: str | int | Session | None,
        names: Sequence[str | int | Character] | str | int | Character,
    ) -> list[Character]:
        """Add characters, creatures, props or sets to a session's cast, so its shots can
        show them (``with``) or take place there (``set``); the ones newly added."""
        return add_members(self, self.session(session), cast_list(names))

    def remove_from_cast(
        self, session: str | int | Session | None, name: str | int | Character
    ) -> Character:
        """Take a member out of a session's cast; the pictures it is in keep it."""
        return remove_member(self, self.session(session), name)

    def session(self, ref: str | int | Session | None = None) -> Session:
        """A session by slug or id; with no reference, the current one."""
        if ref is not None:
            return self.lookups.session(ref)
        current = self.current_session()
        if current is None:
            raise UsageError("no current session: start one with `onmodel session new CHARACTER`")
        return current

    def sessions(
        self, character: str | int | Character | None = None, *, hidden: bool = False
    ) -> list[Session]:
        """The shown sessions (of one character, or all) or, ``hidden``, the others: those
        hidden themselves or with their character."""
        owner = self.character(character) if character is not None else None
        return self.lookups.sessions(owner, hidden=hidden)

    def use_session(self, ref: str | int | Session) -> Session:
        session = self.session(ref)
        self.current.set(session.slug)
        return session

    def current_session(self) -> Session | None:
        slug = self.current.slug()
        return self.lookups.session_by_slug(slug) if slug else None

    # ------------------------------------------------------------------ shots

    def plan_shot(
        self,
        session: str | int | Session | None,
        request: ShotRequest,
        *,
        from_image: int | str | Image | None = None,
        refs: Sequence[Path] = (),
        provider: str | None = None,
        model: str | None = None,
        params: dict[str, Any] | None = None,
        max_cost: Decimal | None = None,
    ) -> ShotPlan:
        """Compose and validate a shot; nothing is recorded and nothing is spent.

        ``max_cost`` refuses the shot when its worst-case cost estimate could exceed it (or is
        unknown), before any request is made.
        """
        return self.planner(session, from_image=from_image).plan(
            request, refs=refs, provider=provider, model=model, params=params, max_cost=max_cost
        )

    def planner(
        self, session: str | int | Session | None, *, from_image: int | str | Image | None = None
    ) -> ShotPlanner:
        """Look up a session and the image its shots branch from, to plan shots from them.

        ``from_image`` None means the session head (or the anchor, before the first shot).
        """
        return self.planning.planner(self.session(session), from_image=from_image)

    def shot(
        self,
        session: str | int | Session | None,
        request: ShotRequest,
        **options: Any,
    ) -> Image:
        """Plan, record and generate one shot; the session head moves to it on success."""
        return self.execute(self.plan_shot(session, request, **options))

    def retry(self, image: int | str | Image, **options: Any) -> Image:
        """Run a failed or interrupted shot again as a new node linked to the failed one; a
        pending one whose process is gone (killed mid-request) is taken over."""
        return self.pipeline.retry(image, **options)

    def attach(self, image: int | str | Image, file: Path, *, gen_id: str | None = None) -> Image:
        """Complete a pending ChatGPT-app shot with the picture the user saved from the app."""
        return self.pipeline.attach(image, file, gen_id=gen_id)

    # the pipeline's steps, for callers that run them apart (batches, the web server)

    def execute(self, plan: ShotPlan) -> Image:
        """Record ``plan`` as pending, generate it, and record the outcome, whatever it is."""
        return self.pipeline.execute(plan)

    def shoot_until_on_model(
        self,
        plan: ShotPlan,
        *,
        checker: str = DEFAULT_CHECKER,
        takes: int = 3,
        min_score: int | None = None,
        max_cost: Decimal | None = None,
    ) -> RetakeReport:
        """Make up to ``takes`` takes of ``plan``, each checked, until one scores
        ``min_score`` (default 80) or more; every take is kept, the best is picked and, for a
        plain shot, becomes the session's head. ``max_cost`` bounds takes and checks together."""
        return shoot_until_on_model(
            self, plan, checker=checker, takes=takes, min_score=min_score, max_cost=max_cost
        )

    def request(self, plan: ShotPlan) -> Delivery:
        """Record ``plan`` and ask its provider; :meth:`store` finishes it."""
        return self.pipeline.request(plan)

    def record(self, plan: ShotPlan) -> int:
        """Record ``plan`` as pending and return its image id; :meth:`call` goes on."""
        return self.pipeline.record(plan)

    def call(self, image_id: int, plan: ShotPlan) -> Delivery:
        """Ask the provider for a recorded plan; a failure is recorded and raised."""
        return self.pipeline.call(image_id, plan)

    def store(self, delivery: Delivery) -> Image:
        """Write a delivered image to the blob store and mark its row succeeded."""
        return self.pipeline.store(delivery)

    # ------------------------------------------------------------------ images and lineage

    def image(self, image_id: int | str | Image) -> Image:
        return self.lookups.image(image_id)

    def children(self, image: Image, limit: int | None = None) -> list[Image]:
        """The image's children, oldest first (the first ``limit``, if given)."""
        return self.lookups.children(image, limit)

    def references(self, image: Image) -> list[Reference]:
        return self.lookups.references(image)

    def references_of(self, images: Sequence[Image]) -> dict[int, list[Reference]]:
        """The references of many images at once (a page's), by image id."""
        return self.lookups.references_of(images)

    def session_images(self, session: str | int | Session | None) -> list[Image]:
        return self.lookups.session_images(self.session(session))

    def tree(self, session: str | int | Session | None = None) -> TreeNode:
        """The session's lineage rooted at the character's anchor."""
        return self.lookups.tree(self.session(session))

    # ------------------------------------------------------------------ long sessions
    # Counted and paged by the database: a series of 100,000 images is never loaded whole.

    def image_counts(self, sessions: Sequence[Session]) -> dict[int, int]:
        """How many shown images each session holds, by session id: all of them less the
        hidden ones, each counted by a ``COUNT ... GROUP BY`` over an index, no row read."""
        ids = [session.id for session in sessions]
        hidden = queries.hidden_image_counts(self.engine, ids)
        return {
            key: n - hidden[key]
            for key, n in queries.session_image_counts(self.engine, ids).items()
        }

    def hidden_counts(self, sessions: Sequence[Session]) -> dict[int, int]:
        """How many hidden images each session holds, by session id."""
        return queries.hidden_image_counts(self.engine, [session.id for session in sessions])

    def status_counts(self, session: str | int | Session | None = None) -> dict[str, int]:
        """How many of a session's shown images are in each status (only statuses it has)."""
        return queries.session_status_counts(self.engine, self.session(session).id)

    def recent_images(self, session: str | int | Session | None, limit: int) -> list[Image]:
        """The session's ``limit`` newest shown images, oldest of them first."""
        found = self.session(session)
        records = queries.session_images_page(
            self.engine, found.id, after_id=None, limit=limit, newest_first=True
        )
        return [Image(self, record) for record in reversed(records)]

    def iter_session_images(
        self, session: str | int | Session | None = None, *, page_size: int = 500
    ) -> Iterator[Image]:
        """Every shown image of the session in id order, read ``page_size`` at a time (each
        page from the last id of the one before): memory stays flat whatever the series'
        length."""
        session_id = self.session(session).id
        after_id: int | None = None
        while records := queries.session_images_page(
            self.engine, session_id, after_id=after_id, limit=page_size, newest_first=False
        ):
            yield from (Image(self, record) for record in records)
            after_id = records[-1].id

    def session_stamp(self, session: str | int | Session | None = None) -> str:
        """A text that changes whenever the session or any of its images does: what a page
        polls (see :func:`onmodel.store.queries.session_stamp`)."""
        return queries.session_stamp(self.engine, self.session(session).id)

    def images_changed_since(
        self, session: str | int | Session | None, stamp: str, limit: int
    ) -> list[Image]:
        """The session's images added or changed since ``stamp`` (a :meth:`session_stamp`)
        was taken, oldest change first, at most ``limit``: what a poll sends.

        A poller that takes the new stamp *before* this call and keeps it for next time
        misses no change (an image may come twice: it replaces itself). ``limit`` images
        back means there may be more: reload the page rather than poll through them. Why
        nothing slips between two polls: :func:`onmodel.store.queries.images_changed_since`.
        """
        since = queries.stamp_change_time(stamp)
        found = queries.images_changed_since(self.engine, self.session(session).id, since, limit)
        return [Image(self, record) for record in found]

    # ------------------------------------------------------------------ costs

    def cost(self, session: str | int | Session | None = None) -> CostReport:
        """What a session has cost so far (with its character's anchors beside it) or, with
        no current session, everything, anchors included."""
        if session is None and self.current_session() is None:
            return self.costs.report(None)
        return self.costs.report(self.session(session))

    def cost_breakdown(
        self, by: Breakdown, session: str | int | Session | None = None
    ) -> CostBreakdown:
        """Everything's costs (or, given a session, that session's) by ``"character"``,
        ``"session"`` or ``"month"`` (UTC, when each image finished), totalled by the
        database; a character's anchors count under it (by session: as ``slug anchor``)."""
        return self.costs.breakdown(by, self.session(session) if session is not None else None)

    # ------------------------------------------------------------------ annotations

    def annotate_image(
        self,
        image: int | str | Image,
        *,
        starred: bool | None = None,
        rating: int | None = None,
        note: str | None = None,
    ) -> Image:
        """Set an image's star, rating (1-5; 0 clears it) or note; ``None`` leaves a field as is."""
        return annotate(self, self.image(image), starred=starred, rating=rating, note=note)

    def tag_image(
        self, image: int | str | Image, tags: Iterable[str], *, remove: bool = False
    ) -> list[str]:
        """Add tags to an image (or, ``remove``, take them off); its tags afterwards. Tags are
        kept in lower case: ``Keeper`` and ``keeper`` are one tag."""
        return tag(self, self.image(image), tags, remove=remove)

    def tags(self, image: int | str | Image) -> list[str]:
        """An image's tags, in alphabetical order."""
        found = self.image(image)
        return self.list_tags([found.id])[found.id]

    def list_tags(self, image_ids: Sequence[int]) -> dict[int, list[str]]:
        """The tags of many images at once, by image id (a query per 500 images)."""
        return tags_of(self.engine, image_ids)

    def images(
        self,
        session: str | int | Session | None = None,
        *,
        starred: bool = False,
        failed: bool = False,
        tag: str | None = None,
        search: str | None = None,
        hidden: bool = False,
        limit: int | None = None,
        with_: Sequence[str | int | Character] | str | None = (),
    ) -> Iterator[ListedImage]:
        """Images newest first, streamed a page at a time: a session's (or, with none, every
        shown session's and character's, anchors included), narrowed by each filter given.

        ``failed``: failed or interrupted (what ``retry`` takes). ``tag``: carrying that tag.
        ``search``: text in the request (pose, scene, free text...) or the note, in any case.
        ``hidden``: only the images hidden one by one (what a purge removes). ``limit``: at
        most that many (None: all). ``with_``: only the pictures showing every one of these
        characters, creatures, props or sets, whoever's series they are in (an unknown name
        is refused before anything is read).
        """
        session_id = self.session(session).id if session is not None else None
        members = tuple(dict.fromkeys(self.character(each).id for each in cast_list(with_)))
        wanted = ImageFilter(
            session_id=session_id,
            starred=starred,
            failed=failed,
            tag=tag,
            search=search,
            hidden=hidden,
            with_ids=members,
        )
        return iter_images(self, wanted, limit=limit)

    # ------------------------------------------------------------------ curation

    def hide_images(self, images: Sequence[int | str | Image]) -> list[Image]:
        """Hide images: they leave listings, trees, exports and pages, but keep their rows,
        so what was made from them keeps its lineage (a tree hangs it from the nearest shown
        ancestor). A session whose head is hidden continues from the nearest shown,
        succeeded ancestor. A character's anchor and an image still being made cannot be
        hidden. :meth:`purge` deletes hidden images for good."""
        return self.curation.hide_images(images, hidden=True)

    def unhide_images(self, images: Sequence[int | str | Image]) -> list[Image]:
        """Show hidden images again, where they were (a moved head stays where it is)."""
        return self.curation.hide_images(images, hidden=False)

    def hide_session(self, session: str | int | Session) -> Session:
        """Hide a session and its images from listings and pages (it stays reachable by its
        slug, to show again or to purge); it is no longer the current session."""
        return self.curation.hide_session(session, hidden=True)

    def unhide_session(self, session: str | int | Session) -> Session:
        return self.curation.hide_session(session, hidden=False)

    def hide_character(self, character: str | int | Character) -> Character:
        """Hide a character, its sessions and their images from listings and pages."""
        return self.curation.hide_character(character, hidden=True)

    def unhide_character(self, character: str | int | Character) -> Character:
        return self.curation.hide_character(character, hidden=False)

    def purge(
        self, *, subtree: bool = False, dry_run: bool = False, grace: timedelta = IN_USE_GRACE
    ) -> PurgeReport:
        """Delete for good every hidden image, session and character (with their images), a
        chunk at a time, then the image files no row uses any more (those younger than
        ``grace`` are kept, as ``onmodel db check`` keeps them: a write may be using them).

        Refused, before anything is deleted, when a kept image was made from one of them
        (unless ``subtree``: then it goes too, with everything made from it, and the report
        lists every shown image taken, ``taken``, and every session head moved, ``heads``),
        when a purged cast member is in pictures that stay (named, with how to hide them),
        when one is a kept character's anchor, or when one is still being made. ``dry_run``
        says what would go and deletes nothing.
        """
        return self.curation.purge(subtree=subtree, dry_run=dry_run, grace=grace)

    # ------------------------------------------------------------------ editing

    def rename_character(
        self, character: str | int | Character, *, name: str | None = None, slug: str | None = None
    ) -> Character:
        """Give a character a new name (used by its next prompts) or slug (must be free)."""
        return self.editing.rename_character(character, name=name, slug=slug)

    def rename_session(
        self, session: str | int | Session, *, title: str | None = None, slug: str | None = None
    ) -> Session:
        """Give a session a new title or slug (must be free); the current session follows a
        new slug, and its batches still find the shots they made."""
        return self.editing.rename_session(session, title=title, slug=slug)

    def update_session(
        self,
        session: str | int | Session,
        *,
        provider: str | None = None,
        model: str | None = None,
        params: Mapping[str, Any | None] | None = None,
    ) -> Session:
        """Change the provider, model or default parameters (``None`` removes one) of a
        session's next shots, checked as a new session's are; its images keep the ones they
        were made with."""
        return self.editing.update_session(
            session, provider=provider, model=model, params=params or {}
        )

    def move_head(self, session: str | int | Session, image: int | str | Image) -> Session:
        """Make ``image`` (succeeded, shown, in the session's lineage) the image the
        session's next shot continues from."""
        return self.editing.move_head(session, image)

    def promote_anchor(self, image: int | str | Image, *, strict: bool = False) -> Character:
        """Make a succeeded shot its character's anchor: the next shots are drawn from it,
        while each earlier shot keeps the anchor its request sent (``image.references``).
        A picture that does not show its character alone (a shot of several, one in a set,
        one that left the lead out) is refused; ``strict`` also refuses a poor reference, and
        a refusal changes nothing."""
        return self.editing.promote_anchor(image, strict=strict)

    def edit_sheet(
        self,
        character: str | int | Character,
        sheet: ModelSheet | Path | Mapping[str, Any] | None = None,
        *,
        changes: Mapping[str, Any] | None = None,
    ) -> SheetVersion:
        """Record a new version of a character's model sheet and make it the sheet its next
        shots use: ``sheet`` replaces it whole, ``changes`` sets some traits (over ``sheet``,
        or over the current sheet). Each image keeps the version it was made with."""
        return self.editing.edit_sheet(character, sheet=sheet, changes=changes or {})

    def sheet_of(self, image: int | str | Image) -> SheetVersion | None:
        """The model sheet version an image was made with."""
        return self.editing.sheet_of(image)

    def sheet_history(self, character: str | int | Character) -> list[SheetVersion]:
        """Every model sheet a character has had, oldest first, with how many images each
        made; the last is the current one."""
        return self.editing.sheet_history(character)

    # ------------------------------------------------------------------ checks

    def check(
        self,
        image: int | str | Image,
        checker: str = DEFAULT_CHECKER,
        *,
        min_score: int | None = None,
        max_cost: Decimal | None = None,
    ) -> CheckRecord:
        """Check an image against its anchor and model sheet with the named checker; the
        check is a row (pending before a paid checker is asked), succeeded or failed.

        A shot of several figures is checked member by member, each against its own anchor
        and sheet, one row each; the answer is then a ``ShotCheck``: the worst member's row,
        at the whole check's cost, with every member's row in ``members``."""
        return self.checks.check(image, checker, min_score=min_score, max_cost=max_cost)

    def check_session(
        self,
        session: str | int | Session | None = None,
        checker: str = DEFAULT_CHECKER,
        *,
        min_score: int | None = None,
        max_cost: Decimal | None = None,
    ) -> Iterator[tuple[Image, CheckRecord]]:
        """Check every finished shot of a session (the current one by default), yielding each
        with its check as it is made; ``max_cost`` bounds them together (``check
        --session``)."""
        shots = self.checks.session_shots(self.session(session))
        return self.checks.check_each(shots, checker, min_score=min_score, max_cost=max_cost)

    def checks_of(self, image_ids: Sequence[int]) -> dict[int, list[CheckRecord]]:
        """Every check of these images, oldest first, by image id (a query per 500 ids)."""
        return self.checks.of(image_ids)

    def latest_checks(self, image_ids: Sequence[int]) -> dict[int, CheckRecord]:
        """Each image's newest finished check, by image id: what a badge shows (for a shot
        of several, a ``ShotCheck``: its worst member, with every member's row)."""
        return self.checks.latest(image_ids)

    # ------------------------------------------------------------------ anchors and views

    def anchor_warnings(self, image: int | str | Image) -> list[str]:
        """What makes an image a poor anchor, one line each (none: a clean reference): a busy
        background, the character touching the frame's edges, or small in it. Every later
        shot is matched against the anchor, so ``character new``, ``import`` and ``anchor``
        print these; with ``strict`` (``studio.cast.create_character``, ``import_character``,
        ``studio.editing.promote_anchor``) they raise ``AnchorHygieneError`` instead."""
        return self.cast.anchor_warnings(self.image(image))

    def describe_character(
        self, character: str | int | Character, checker: str = DEFAULT_CHECKER
    ) -> SheetProposal:
        """Propose a model sheet from the character's anchor (colours as hex codes): the
        ``palette`` checker reads the subject's dominant colours offline, a judge asks a vision
        model. Nothing is saved; ``edit_sheet(character, proposal.proposed)`` records it as a
        new sheet version."""
        return self.editing.describe(character, checker)

    def turnaround(
        self,
        character: str | int | Character,
        *,
        views: Sequence[str] | None = None,
        provider: str | None = None,
        model: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> list[Image]:
        """Draw reference views of a character from its anchor (``views``: front,
        three-quarter, side and back by default), one request each with the anchor attached,
        recorded as shots are; later shots attach them after the anchor and parent, as many
        as the provider and model take. Every view is checked before the first is paid for;
        a failed one is in the list, failed (its row says why)."""
        return make_turnaround(
            self,
            self.character(character),
            views=views,
            provider=provider,
            model=model,
            params=params,
        )

    def views(self, character: str | int | Character) -> list[Image]:
        """The character's reference views that count: the newest succeeded, shown one of
        each view drawn from its current anchor (a new anchor leaves the old views behind)."""
        return character_views(self, self.character(character))
