"""The studio: the one object the CLI, the web server, batches and library users all hold.

It opens a data folder and hands out its parts, each in a module of its own: lookups
(characters, sessions, images, lineage), the cast (creating characters and sessions), planning,
the generation pipeline, costs and the current session. Its methods are the public API; each
is a short call into the part that does the work.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from onmodel.blobs import BlobStore
from onmodel.composer import Composer
from onmodel.config import Paths, resolve_paths
from onmodel.errors import UsageError
from onmodel.handles import Character, Image, Reference, Session, TreeNode
from onmodel.providers import get_provider
from onmodel.providers.base import Provider, ProviderContext
from onmodel.sheet import ModelSheet, ShotRequest
from onmodel.store import queries
from onmodel.store.database import create_database_engine, upgrade
from onmodel.studio.annotations import annotate
from onmodel.studio.cast import Cast
from onmodel.studio.costs import CostReport, Costs
from onmodel.studio.lookups import Lookups
from onmodel.studio.pipeline import Delivery, Pipeline
from onmodel.studio.planning import Planning, ShotPlanner
from onmodel.studio.plans import ShotPlan
from onmodel.studio.state import CurrentSession


@dataclass
class Studio:
    paths: Paths
    engine: Engine
    blobs: BlobStore
    composer: Composer
    lookups: Lookups = field(init=False, repr=False)
    cast: Cast = field(init=False, repr=False)
    planning: Planning = field(init=False, repr=False)
    pipeline: Pipeline = field(init=False, repr=False)
    costs: Costs = field(init=False, repr=False)
    current: CurrentSession = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.lookups = Lookups(self)
        self.cast = Cast(self)
        self.planning = Planning(self)
        self.pipeline = Pipeline(self)
        self.costs = Costs(self)
        self.current = CurrentSession(self.paths.state_file)

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, home: Path | str | None = None) -> Studio:
        """Open (creating and migrating if needed) the data directory ``home``."""
        paths = resolve_paths(home)
        paths.home.mkdir(parents=True, exist_ok=True)
        engine = create_database_engine(paths.database_url)
        upgrade(engine)
        return cls(
            paths=paths,
            engine=engine,
            blobs=BlobStore(paths.blobs),
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
        sheet: ModelSheet | Path | None = None,
        slug: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> Character:
        """Create a character and generate its anchor image on a plain background.

        Everything is checked before the character is written; once it is, a failed anchor is
        a recorded failure the user can retry, not a vanished character.
        """
        return self.cast.create_character(
            name,
            prompt=prompt,
            sheet=sheet,
            slug=slug,
            provider=provider,
            model=model,
            params=params,
        )

    def import_character(
        self,
        name: str,
        image: Path,
        *,
        prompt: str = "",
        gen_id: str | None = None,
        revised_prompt: str | None = None,
        sheet: ModelSheet | Path | None = None,
        slug: str | None = None,
    ) -> Character:
        """Adopt an image the user already has (say, from ChatGPT) as a character's anchor."""
        return self.cast.import_character(
            name,
            image,
            prompt=prompt,
            gen_id=gen_id,
            revised_prompt=revised_prompt,
            sheet=sheet,
            slug=slug,
        )

    def character(self, ref: str | int | Character) -> Character:
        return self.lookups.character(ref)

    def characters(self) -> list[Character]:
        return self.lookups.characters()

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
    ) -> Session:
        """Start a series for a character; it becomes the current session by default."""
        session = self.cast.start_session(
            self.character(character),
            title=title,
            model=model,
            provider=provider,
            params=params,
            slug=slug,
        )
        if make_current:
            self.use_session(session)
        return session

    def session(self, ref: str | int | Session | None = None) -> Session:
        """A session by slug or id; with no reference, the current one."""
        if ref is not None:
            return self.lookups.session(ref)
        current = self.current_session()
        if current is None:
            raise UsageError("no current session: start one with `onmodel session new CHARACTER`")
        return current

    def sessions(self, character: str | int | Character | None = None) -> list[Session]:
        owner = self.character(character) if character is not None else None
        return self.lookups.sessions(owner)

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

    def children(self, image: Image) -> list[Image]:
        return self.lookups.children(image)

    def references(self, image: Image) -> list[Reference]:
        return self.lookups.references(image)

    def session_images(self, session: str | int | Session | None) -> list[Image]:
        return self.lookups.session_images(self.session(session))

    def tree(self, session: str | int | Session | None = None) -> TreeNode:
        """The session's lineage rooted at the character's anchor."""
        return self.lookups.tree(self.session(session))

    # ------------------------------------------------------------------ long sessions
    # Counted and paged by the database: a series of 100,000 images is never loaded whole.

    def image_counts(self, sessions: Sequence[Session]) -> dict[int, int]:
        """How many images each session holds, by session id (one ``COUNT ... GROUP BY``)."""
        return queries.session_image_counts(self.engine, [session.id for session in sessions])

    def status_counts(self, session: str | int | Session | None = None) -> dict[str, int]:
        """How many of a session's images are in each status (only statuses it has)."""
        return queries.session_status_counts(self.engine, self.session(session).id)

    def recent_images(self, session: str | int | Session | None, limit: int) -> list[Image]:
        """The session's ``limit`` newest images, oldest of them first."""
        found = self.session(session)
        records = queries.session_images_page(
            self.engine, found.id, after_id=None, limit=limit, newest_first=True
        )
        return [Image(self, record) for record in reversed(records)]

    def iter_session_images(
        self, session: str | int | Session | None = None, *, page_size: int = 500
    ) -> Iterator[Image]:
        """Every image of the session in id order, read ``page_size`` at a time (each page
        from the last id of the one before): memory stays flat whatever the series' length."""
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

    # ------------------------------------------------------------------ costs and annotations

    def cost(self, session: str | int | Session | None = None) -> CostReport:
        """What a session (or, with no current session, everything) has cost so far."""
        if session is None and self.current_session() is None:
            return self.costs.report(None)
        return self.costs.report(self.session(session))

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
