"""Finding characters, sessions and images, and the lineage that links them.

Reads only: every method turns references users type (a slug, a number, ``#12``) into
handles, and refuses the ones no row can match with a :class:`NotFoundError`, never an
overflow inside the database driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from onmodel.errors import NotFoundError, UsageError
from onmodel.handles import Character, Image, Reference, Session, TreeNode
from onmodel.limits import check_id
from onmodel.store import queries

if TYPE_CHECKING:
    from onmodel.studio.core import Studio


class Lookups:
    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        self.engine = studio.engine

    def character(self, ref: str | int | Character) -> Character:
        if isinstance(ref, Character):
            ref = ref.id
        found = queries.character(self.engine, ref)
        if found is None:
            raise NotFoundError(f"no character {ref!r} (see: onmodel character list)")
        return Character(self.studio, found)

    def characters(self) -> list[Character]:
        return [Character(self.studio, record) for record in queries.characters(self.engine)]

    def session(self, ref: str | int | Session) -> Session:
        if isinstance(ref, Session):
            ref = ref.id
        found = queries.session(self.engine, ref)
        if found is None:
            raise NotFoundError(f"no session {ref!r} (see: onmodel session list)")
        return Session(self.studio, found)

    def session_by_slug(self, slug: str) -> Session | None:
        found = queries.session(self.engine, slug)
        return Session(self.studio, found) if found is not None else None

    def sessions(self, character: Character | None = None) -> list[Session]:
        owner = character.id if character is not None else None
        return [Session(self.studio, record) for record in queries.sessions(self.engine, owner)]

    def image(self, image_id: int | str | Image) -> Image:
        if isinstance(image_id, Image):
            image_id = image_id.id
        key = _image_key(image_id)
        found = queries.image(self.engine, key)
        if found is None:
            raise NotFoundError(f"no image {key} (see: onmodel tree)")
        return Image(self.studio, found)

    def children(self, image: Image) -> list[Image]:
        return [Image(self.studio, record) for record in queries.children(self.engine, image.id)]

    def references(self, image: Image) -> list[Reference]:
        return [Reference.from_row(record) for record in queries.references(self.engine, image.id)]

    def session_images(self, session: Session) -> list[Image]:
        found = queries.session_images(self.engine, session.id)
        return [Image(self.studio, record) for record in found]

    def tree(self, session: Session) -> TreeNode:
        """The session's lineage rooted at the character's anchor.

        Images from outside the session that a shot branched from (another session's image)
        are included, so every node's parent link is visible.
        """
        anchor_id = session.character.anchor_image_id
        records = queries.lineage_images(self.engine, session.id, anchor_id)
        nodes = {record.id: TreeNode(Image(self.studio, record)) for record in records}
        roots: list[TreeNode] = []
        for node in nodes.values():
            parent_id = node.image.parent_id
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


def _image_key(ref: int | str) -> int:
    if isinstance(ref, int):
        return check_id(ref, "image")
    text = ref.strip().lstrip("#")
    if not (text.isascii() and text.isdigit()):
        raise UsageError(f"{ref!r} is not an image id (a number such as 12)")
    return check_id(int(text), "image")
