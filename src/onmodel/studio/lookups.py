"""Finding characters, sessions and images, and the lineage that links them.

Reads only: every method turns references users type (a slug, a number, ``#12``) into
handles, and refuses the ones no row can match with a :class:`NotFoundError`, never an
overflow inside the database driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlmodel import col, select

from onmodel.errors import NotFoundError, UsageError
from onmodel.handles import Character, Image, Reference, Session, TreeNode
from onmodel.limits import MAX_ID, check_id
from onmodel.store.database import transaction
from onmodel.store.models import CharacterRow, ImageReferenceRow, ImageRow, SessionRow

if TYPE_CHECKING:
    from onmodel.studio.core import Studio


class Lookups:
    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        self.engine = studio.engine

    def character(self, ref: str | int | Character) -> Character:
        if isinstance(ref, Character):
            ref = ref.id
        with transaction(self.engine) as db:
            row = _by_ref(db, CharacterRow, ref)
            if row is None and isinstance(ref, str):
                row = db.exec(select(CharacterRow).where(CharacterRow.name == ref)).first()
        if row is None:
            raise NotFoundError(f"no character {ref!r} (see: onmodel character list)")
        return Character(self.studio, row)

    def characters(self) -> list[Character]:
        with transaction(self.engine) as db:
            rows = db.exec(select(CharacterRow).order_by(col(CharacterRow.id))).all()
        return [Character(self.studio, r) for r in rows]

    def session(self, ref: str | int | Session) -> Session:
        if isinstance(ref, Session):
            ref = ref.id
        with transaction(self.engine) as db:
            row = _by_ref(db, SessionRow, ref)
        if row is None:
            raise NotFoundError(f"no session {ref!r} (see: onmodel session list)")
        return Session(self.studio, row)

    def session_by_slug(self, slug: str) -> Session | None:
        with transaction(self.engine) as db:
            row = db.exec(select(SessionRow).where(SessionRow.slug == slug)).first()
        return Session(self.studio, row) if row is not None else None

    def sessions(self, character: Character | None = None) -> list[Session]:
        query = select(SessionRow).order_by(col(SessionRow.id))
        if character is not None:
            query = query.where(SessionRow.character_id == character.id)
        with transaction(self.engine) as db:
            rows = db.exec(query).all()
        return [Session(self.studio, r) for r in rows]

    def image(self, image_id: int | str | Image) -> Image:
        if isinstance(image_id, Image):
            image_id = image_id.id
        key = _image_key(image_id)
        with transaction(self.engine) as db:
            row = db.get(ImageRow, key)
        if row is None:
            raise NotFoundError(f"no image {key} (see: onmodel tree)")
        return Image(self.studio, row)

    def children(self, image: Image) -> list[Image]:
        with transaction(self.engine) as db:
            rows = db.exec(
                select(ImageRow).where(ImageRow.parent_id == image.id).order_by(col(ImageRow.id))
            ).all()
        return [Image(self.studio, r) for r in rows]

    def references(self, image: Image) -> list[Reference]:
        with transaction(self.engine) as db:
            rows = db.exec(
                select(ImageReferenceRow)
                .where(ImageReferenceRow.image_id == image.id)
                .order_by(col(ImageReferenceRow.position))
            ).all()
        return [
            Reference(
                position=r.position,
                role=r.role,
                sha256=r.sha256,
                format=r.format,
                image_id=r.ref_image_id,
            )
            for r in rows
        ]

    def session_images(self, session: Session) -> list[Image]:
        with transaction(self.engine) as db:
            rows = db.exec(
                select(ImageRow).where(ImageRow.session_id == session.id).order_by(col(ImageRow.id))
            ).all()
        return [Image(self.studio, r) for r in rows]

    def tree(self, session: Session) -> TreeNode:
        """The session's lineage rooted at the character's anchor.

        Images from outside the session that a shot branched from (another session's image)
        are included, so every node's parent link is visible.
        """
        character = session.character
        with transaction(self.engine) as db:
            rows = list(db.exec(select(ImageRow).where(ImageRow.session_id == session.id)).all())
            known = {r.id for r in rows}
            missing = {r.parent_id for r in rows if r.parent_id and r.parent_id not in known}
            while missing:
                extra = db.exec(select(ImageRow).where(col(ImageRow.id).in_(missing))).all()
                rows.extend(extra)
                known.update(r.id for r in extra)
                missing = {r.parent_id for r in extra if r.parent_id and r.parent_id not in known}
            anchor_id = character.row.anchor_image_id
            if anchor_id is not None and anchor_id not in known:
                anchor_row = db.get(ImageRow, anchor_id)
                if anchor_row is not None:
                    rows.append(anchor_row)
        nodes = {
            r.id: TreeNode(Image(self.studio, r)) for r in sorted(rows, key=lambda r: r.id or 0)
        }
        roots: list[TreeNode] = []
        for node in nodes.values():
            parent_id = node.image.row.parent_id
            if parent_id in nodes:
                nodes[parent_id].children.append(node)
            else:
                roots.append(node)
        if len(roots) == 1:
            return roots[0]
        anchor_node = nodes.get(anchor_id) if anchor_id is not None else None
        root = anchor_node or roots[0]
        root.children.extend(r for r in roots if r is not root)
        return root


def _by_ref(db: Any, table: type[Any], ref: str | int) -> Any:
    """Rows are named by slug or by numeric id; an id no row can have finds nothing."""
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isascii() and ref.isdigit()):
        key = int(ref)
        return db.get(table, key) if 0 < key <= MAX_ID else None
    return db.exec(select(table).where(table.slug == ref)).first()


def _image_key(ref: int | str) -> int:
    if isinstance(ref, int):
        return check_id(ref, "image")
    text = ref.strip().lstrip("#")
    if not (text.isascii() and text.isdigit()):
        raise UsageError(f"{ref!r} is not an image id (a number such as 12)")
    return check_id(int(text), "image")
