"""Generation as steps every caller uses: record pending, call the provider, store the result.

The CLI runs them in a row (:meth:`Pipeline.execute`), a batch overlaps the call of one shot
with the storing of another, and the web server answers with the recorded id while a thread
does the rest. Whatever happens after the first step, the row says so: a crash, a refusal or
an API error never loses a request, and the blob is written before the row says succeeded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onmodel.blobs import sha256_file
from onmodel.composer import ANCHOR_TEMPLATE
from onmodel.errors import GenerationError, InvalidImageError, UsageError
from onmodel.handles import Image
from onmodel.imagefile import inspect_bytes, read_image_file
from onmodel.kinds import SET
from onmodel.limits import MAX_NAME_LENGTH, check_text
from onmodel.owners import owner_token
from onmodel.providers import is_manual
from onmodel.providers.base import (
    UNBILLED_FAILURES,
    CastMember,
    GenerationResult,
    InputImage,
    ManualResult,
    ProviderError,
    attachment_name,
)
from onmodel.sheet import ShotRequest
from onmodel.status import ImageStatus
from onmodel.store import cast as cast_store
from onmodel.store import queries, writes
from onmodel.store.models import utcnow
from onmodel.store.stale import reconcile_stale
from onmodel.studio.plans import ShotPlan

if TYPE_CHECKING:
    from onmodel.studio.core import Studio


@dataclass(frozen=True)
class Delivery:
    """A provider's answer to a pending row, not stored yet (see :meth:`Pipeline.call`)."""

    image_id: int
    plan: ShotPlan
    result: GenerationResult | ManualResult
    started: float


class Pipeline:
    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        self.engine = studio.engine

    def execute(self, plan: ShotPlan) -> Image:
        """Record ``plan`` as pending, generate it, and record the outcome, whatever it is."""
        return self.store(self.request(plan))

    def request(self, plan: ShotPlan) -> Delivery:
        """Record ``plan`` as pending and ask its provider; a failure is recorded and raised.

        The first half of :meth:`execute`. It is separate so that a batch can send its next
        request while the previous answer is still being written: the row stays ``pending``
        until :meth:`store` finishes it, so a kill in between is re-made like any other.
        """
        return self.call(self.record(plan), plan)

    def record(self, plan: ShotPlan) -> int:
        """The first step: the pending row, written before any money is spent.

        It names its owner, this process, so that once the process is gone (even by SIGKILL)
        any later one can tell the row will never finish and let it be retried. Its id is
        known at once, so a caller that runs the rest elsewhere (the web server's background
        shots) can answer with it without waiting for the provider.
        """
        self.studio.provider(plan.provider)  # an unknown provider leaves nothing pending
        owner = owner_token(self.studio.paths.home)  # before the write lock: may create a file
        repeated = plan.variations > 1  # a single shot is no take: its columns stay empty
        return writes.insert_pending_image(
            self.engine,
            {
                "character_id": plan.character_id,
                "session_id": plan.session_id,
                "parent_id": plan.parent_id,
                "retry_of_id": plan.retry_of_id,
                "kind": plan.kind,
                "request": plan.request.as_params(),
                "template_name": plan.rendered.template_name,
                "template_hash": plan.rendered.template_hash,
                "prompt": plan.prompt,
                "previous_response_id": plan.previous_response_id,
                "provider": plan.provider,
                "model": plan.model,
                "params": plan.params,
                "batch_id": plan.batch_id,
                "shot_key": plan.shot_key,
                "variation": plan.variation if repeated else None,
                "variations": plan.variations if repeated else None,
                "owner": owner,
            },
            [
                {
                    "position": position,
                    "role": item.role,
                    "ref_image_id": item.image_id,
                    "sha256": item.sha256,
                    "format": item.mime.split("/")[1],
                }
                for position, item in enumerate(plan.inputs)
            ],
            [member.id for member in plan.cast],
        )

    def call(self, image_id: int, plan: ShotPlan) -> Delivery:
        """The second step: ask the provider for a recorded plan; a failure is recorded, then
        raised as a :class:`GenerationError`."""
        provider = self.studio.provider(plan.provider)
        request = plan.generation_request()
        started = time.monotonic()
        try:
            result = provider.generate(request)
        except ProviderError as exc:
            self._record_failure(image_id, exc, started, plan)
            raise _failed(image_id, exc) from exc
        except (KeyboardInterrupt, SystemExit):
            self._mark(image_id, status=ImageStatus.INTERRUPTED, error_type="interrupted")
            raise
        except Exception as exc:
            failure = ProviderError(f"{type(exc).__name__}: {exc}", kind="unexpected")
            self._record_failure(image_id, failure, started, plan)
            raise _failed(image_id, failure) from exc
        return Delivery(image_id, plan, result, started)

    def store(self, delivery: Delivery) -> Image:
        """The last step: write a delivered image to the blob store and mark its row
        succeeded (a manual provider's messages leave the row pending, for ``attach``)."""
        result = delivery.result
        if isinstance(result, ManualResult):
            self._mark(delivery.image_id, params=result.sent_params or delivery.plan.params)
            pending = self.studio.image(delivery.image_id)
            return replace(
                pending,
                messages=tuple(result.messages),
                first_message=self._messages_before(pending) + 1,
                attachments=tuple(
                    self._attachable(pending, item, delivery.plan.cast) for item in result.attach
                ),
            )
        return self._record_success(delivery.image_id, delivery.plan, result, delivery.started)

    def retry(self, image: int | str | Image, **options: Any) -> Image:
        """See :meth:`Studio.retry`."""
        studio = self.studio
        failed = studio.image(image)
        if failed.status == ImageStatus.PENDING and reconcile_stale(
            self.engine, studio.paths.home, [failed.id]
        ):
            failed = studio.image(failed.id)  # its process is gone: now marked interrupted
        if failed.status == ImageStatus.PENDING:
            raise UsageError(
                f"image {failed.id} is pending: a running process is still making it, "
                "or it waits for `onmodel attach`"
            )
        if failed.status not in (ImageStatus.FAILED, ImageStatus.INTERRUPTED):
            raise UsageError(f"image {failed.id} is {failed.status}; only failed shots are retried")
        if failed.row.session_id is None:
            if failed.kind == "view":
                return self._retry_view(failed)
            if failed.kind != "anchor":
                raise UsageError(f"image {failed.id} belongs to no session")
            return self._retry_anchor(failed)
        extras = [
            studio.blobs.local_path(r.sha256, r.format)
            for r in failed.references
            if r.role == "extra"
        ]
        plan = studio.plan_shot(
            failed.row.session_id,
            self._request_as_cast_now(failed),
            from_image=failed.row.parent_id,
            refs=extras,
            provider=failed.row.provider,
            model=failed.row.model,
            params=failed.row.params,
            **options,
        )
        row = failed.row  # a batch shot stays in its batch, under its key, as the same take
        plan = replace(
            plan,
            retry_of_id=failed.id,
            batch_id=row.batch_id,
            shot_key=row.shot_key,
            variation=row.variation or 1,
            variations=row.variations or 1,
        )
        return self.execute(plan)

    def _request_as_cast_now(self, failed: Image) -> ShotRequest:
        """``failed``'s request with its cast named as the members are named today.

        The request recorded the members' slugs; a member renamed since would be looked for
        under its old name, and another character given that name would be drawn in its
        place. Who was in the shot is recorded by id (``image_cast``), so it is read from
        there; a member no longer in the session's cast is then refused by its new name."""
        request = failed.request
        if not request.cast and not request.set:
            return request
        ids = cast_store.cast_of(self.engine, [failed.id]).get(failed.id, [])
        found = self.studio.lookups.characters_by_id(ids)
        members = [found[each] for each in ids if each in found]
        figures = [member.slug for member in members if member.kind != SET]
        where = next((member.slug for member in members if member.kind == SET), "")
        return request.model_copy(update={"cast": figures if request.cast else [], "set": where})

    def attach(self, image: int | str | Image, file: Path, *, gen_id: str | None = None) -> Image:
        """See :meth:`Studio.attach`."""
        if gen_id is not None:
            check_text(gen_id, "the gen id", max_length=MAX_NAME_LENGTH, multiline=False)
        pending = self.studio.image(image)
        if pending.status != ImageStatus.PENDING or not is_manual(pending.row.provider):
            raise UsageError(
                f"image {pending.id} is a {pending.status} {pending.row.provider} image; "
                "attach completes pending chatgpt shots only"
            )
        parent = pending.parent
        if parent is not None and parent.status == ImageStatus.PENDING:
            raise UsageError(
                f"image {pending.id} continues image {parent.id}, which still waits for its "
                f"picture: attach image {parent.id} first, in the order of the conversation"
            )
        data, info = read_image_file(file)
        blob = self.studio.blobs.put(data, info.format)
        return self._complete(
            pending.id,
            gen_id=gen_id,
            sha256=blob.sha256,
            format=info.format,
            width=info.width,
            height=info.height,
            byte_size=blob.size,
            returned={"source": file.name, "size": f"{info.width}x{info.height}"},
            cost_usd="0",
        )

    def _messages_before(self, pending: Image) -> int:
        """How many messages the session's conversation with ``pending``'s provider already
        holds: each earlier shot records how many it sent (``messages`` in its parameters;
        one for a shot recorded before the count was). Only that provider's shots are read,
        never the session's other images."""
        if pending.session_id is None:
            return 0
        earlier = queries.shot_params_through(
            self.studio.engine, pending.session_id, pending.provider, pending.id
        )
        return sum(_sent_messages(params) for params in earlier)

    def _attachable(self, pending: Image, item: InputImage, cast: tuple[CastMember, ...]) -> Path:
        """A copy of a file the user attaches to the first message, under a name they can
        find in a file picker, the one the message names (``max-anchor.png`` in
        ``HOME/attachments/``), not a digest.

        Written whole and then renamed into place, and rewritten when the character's anchor
        has changed since, so the name always holds the current anchor's exact bytes.
        """
        fmt = item.mime.split("/")[1]
        lead = self.studio.character(pending.character_id).slug
        folder = self.studio.paths.home / "attachments"
        target = folder / attachment_name(item, cast, lead)
        if target.is_file() and sha256_file(target) == item.sha256:
            return target
        data = self.studio.blobs.read(item.sha256, fmt)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            partial.write_bytes(data)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return target

    def _retry_anchor(self, failed: Image) -> Image:
        studio = self.studio
        plan = studio.planning.plan(
            kind="anchor",
            character=studio.character(failed.row.character_id),
            session=None,
            parent=None,
            request=ShotRequest(),
            provider=failed.row.provider,
            model=failed.row.model,
            params=failed.row.params,
            template=ANCHOR_TEMPLATE,
        )
        return self.execute(replace(plan, retry_of_id=failed.id))

    def _retry_view(self, failed: Image) -> Image:
        """A failed turnaround view, drawn again from the character's current anchor (a view
        of an older anchor would not count), with the provider, model and parameters it had."""
        from onmodel.studio.turnaround import plan_view

        studio = self.studio
        character = studio.character(failed.row.character_id)
        plan = plan_view(
            studio,
            character,
            studio.planning.anchor_of(character),
            failed.request.view,
            provider=failed.row.provider,
            model=failed.row.model,
            params=failed.row.params,
        )
        return self.execute(replace(plan, retry_of_id=failed.id))

    def _record_success(
        self, image_id: int, plan: ShotPlan, result: GenerationResult, started: float
    ) -> Image:
        try:
            info = inspect_bytes(result.data, source=f"the image {plan.provider} returned")
        except InvalidImageError as exc:
            failure = ProviderError(str(exc), kind="bad_response", usage=result.usage)
            self._record_failure(image_id, failure, started, plan, result.returned)
            raise _failed(image_id, failure) from exc
        blob = self.studio.blobs.put(result.data, info.format)
        return self._complete(
            image_id,
            params=result.sent_params,
            returned=result.returned,
            revised_prompt=result.revised_prompt,
            gen_id=result.gen_id,
            response_id=result.response_id,
            usage=result.usage,
            cost_usd=_text_or_none(
                self.studio.costs.of_result(
                    plan.provider, plan.model, result.usage, result.returned
                )
            ),
            sha256=blob.sha256,
            format=info.format,
            width=info.width,
            height=info.height,
            byte_size=blob.size,
            latency_ms=int((time.monotonic() - started) * 1000),
        )

    def _complete(self, image_id: int, **values: Any) -> Image:
        """Mark a row succeeded with its file's details (and, with it, the character's anchor
        or the session's new head)."""
        writes.complete_image(self.engine, image_id, values)
        return self.studio.image(image_id)

    def _record_failure(
        self,
        image_id: int,
        error: ProviderError,
        started: float,
        plan: ShotPlan,
        returned: Mapping[str, Any] | None = None,
    ) -> None:
        self._mark(
            image_id,
            status=ImageStatus.FAILED,
            cost_usd=_text_or_none(self._failure_cost(plan, error, returned)),
            error_type=error.kind,
            error_code=error.code,
            error_message=str(error),
            error_categories=error.categories,
            usage=error.usage,
            response_id=error.response_id,
            latency_ms=int((time.monotonic() - started) * 1000),
            finished_at=utcnow(),
        )

    def _failure_cost(
        self, plan: ShotPlan, error: ProviderError, returned: Mapping[str, Any] | None
    ) -> Decimal | None:
        """What a failed request cost: what the API reported before it failed (its usage,
        or what it returned), priced by its provider; nothing when the API refused it before
        its model answered; else unknown (a timeout may have been billed)."""
        if error.usage or returned:
            return self.studio.costs.of_result(plan.provider, plan.model, error.usage, returned)
        if error.kind in UNBILLED_FAILURES or not self.studio.provider(plan.provider).billed:
            return Decimal(0)
        return None

    def _mark(self, image_id: int, **values: Any) -> None:
        writes.update_image(self.engine, image_id, values)


def _text_or_none(cost: Decimal | None) -> str | None:
    return None if cost is None else str(cost)


def _sent_messages(params: Mapping[str, Any]) -> int:
    count = params.get("messages")
    return count if isinstance(count, int) and count > 0 else 1


def _failed(image_id: int, error: ProviderError) -> GenerationError:
    """The error a caller sees; the failed row already holds every detail."""
    return GenerationError(
        f"image {image_id} failed: {error}",
        image_id=image_id,
        retryable=error.kind != "quota",
        retry_after=error.retry_after,
    )
