"""Finding characters, sessions and images, and the lineage that links them.

Reads only: every method turns references users type (a slug, a number, ``#12``) into
handles, and refuses the ones no row can match with a :class:`NotFoundError`, never an
overflow inside the database driver.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from onmodel.errors import NotFoundError, UsageError
from onmodel.handles import Character, Image, Reference, Session, TreeNode
from onmodel.limits import check_id
from onmodel.lineage import LineageIndex
from onmodel.store import lineage, listing, queries
from onmodel.store.listing import SessionCount

if TYPE_CHECKING:
    from onmodel.studio.core import Studio


class Lookups:
    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        self.engine = studio.engine

    def character(self, ref: str | int | Character) -> Character:
        if isinstance(ref, Character):
            ref = ref.id
        elif isinstance(ref, str) and ref.startswith("#") and ref[1:].isdigit():
            ref = ref[1:]  # "#12", as images are named
        found = queries.character(self.engine, ref)
        if found is None:
            raise NotFoundError(f"no character {ref!r} (see: onmodel character list)")
        return Character(self.studio, found)

    def find_character(self, ref: str | int) -> Character | None:
        """The character ``ref`` names, or None (where a missing one is not the error)."""
        try:
            return self.character(ref)
        except NotFoundError:
            return None

    def characters_by_id(self, ids: Iterable[int]) -> dict[int, Character]:
        """These characters by id, read in one query per chunk of ids (a cast, a page's)."""
        found = queries.characters_by_id(self.engine, ids)
        return {record.id: Character(self.studio, record) for record in found}

    def characters(self, *, hidden: bool = False) -> list[Character]:
        found = queries.characters(self.engine, hidden=hidden)
        return [Character(self.studio, record) for record in found]

    def session_counts(self, characters: Sequence[Character]) -> dict[int, SessionCount]:
        """How many shown sessions each character leads and is cast in, by character id:
        counted by the database for all of them at once, never a query per character."""
        return listing.session_counts(self.engine, [c.id for c in characters])

    def sessions_cast_in(self, characters: Sequence[Character]) -> dict[int, list[int]]:
        """The ids of the shown sessions casting each character besides their lead, by
        character id, read for all of them at once."""
        return listing.sessions_cast_in(self.engine, [c.id for c in characters])

    def characters_pictured(self, image_ids: Sequence[int]) -> set[int]:
        """The ids of everyone in these pictures besides their own characters."""
        return listing.characters_pictured(self.engine, image_ids)

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

    def sessions(
        self, character: Character | None = None, *, hidden: bool = False
    ) -> list[Session]:
        owner = character.id if character is not None else None
        found = queries.sessions(self.engine, owner, hidden=hidden)
        return [Session(self.studio, record) for record in found]

    def image(self, image_id: int | str | Image) -> Image:
        if isinstance(image_id, Image):
            image_id = image_id.id
        key = _image_key(image_id)
        found = queries.image(self.engine, key)
        if found is None:
            raise NotFoundError(f"no image {key} (see: onmodel tree)")
        return Image(self.studio, found)

    def children(self, image: Image, limit: int | None = None) -> list[Image]:
        found = queries.children(self.engine, image.id, limit)
        return [Image(self.studio, record) for record in found]

    def references(self, image: Image) -> list[Reference]:
        return [Reference.from_row(record) for record in queries.references(self.engine, image.id)]

    def references_of(self, images: Sequence[Image]) -> dict[int, list[Reference]]:
        """Each image's references, by image id, read a chunk of ids per query."""
        found = queries.references_of(self.engine, [image.id for image in images])
        return {key: [Reference.from_row(r) for r in rows] for key, rows in found.items()}

    def session_images(self, session: Session) -> list[Image]:
        found = queries.session_images(self.engine, session.id)
        return [Image(self.studio, record) for record in found]

    def lineage(self, session: Session) -> LineageIndex:
        """The session's lineage as ids and links, rooted at the character's anchor.

        Images from outside the session that a shot branched from (another session's image)
        are included, so every node's parent link is visible. Hidden images are left out and
        their children hang from the nearest shown ancestor instead (see :func:`shown_links`).
        """
        anchor_id = session.character.anchor_image_id
        links = lineage.session_links(self.engine, session.id, anchor_id)
        return LineageIndex(shown_links(links), anchor_id)

    def images(self, refs: Iterable[int | str | Image]) -> list[Image]:
        """The images ``refs`` name, each once, in order: read a chunk of ids per query (a
        library call may name thousands), refused whole if one does not exist."""
        keys = list(
            dict.fromkeys(ref.id if isinstance(ref, Image) else _image_key(ref) for ref in refs)
        )
        found = self.images_by_id(keys)
        missing = next((key for key in keys if key not in found), None)
        if missing is not None:
            raise NotFoundError(f"no image {missing} (see: onmodel tree)")
        return [found[key] for key in keys]

    def images_by_id(self, image_ids: Iterable[int]) -> dict[int, Image]:
        """The images with these ids (those that exist), read a chunk of ids per query."""
        found = lineage.images_by_id(self.engine, image_ids)
        return {key: Image(self.studio, record) for key, record in found.items()}

    def tree(self, session: Session) -> TreeNode:
        """The whole lineage as handles (see :meth:`lineage`)."""
        index = self.lineage(session)
        images = self.images_by_id(index.order())
        nodes = {key: TreeNode(image) for key, image in images.items()}
        for key in index.order():
            nodes[key].children.extend(nodes[child] for child in index.children(key))
        return nodes[index.roots[0]]


def shown_links(links: Iterable[tuple[int, int | None, bool]]) -> list[tuple[int, int | None]]:
    """``(id, parent_id)`` of the shown images of ``(id, parent_id, hidden)`` links, each
    shown image hung from its nearest shown ancestor.

    Hiding an image takes it out of the tree, not its descendants: a hidden failed take's
    retry, or the shots made after a hidden variation, stay where the series continues, one
    line up. Only the drawing skips the hidden image; every row still names its real parent
    (``onmodel show`` and :meth:`Image.lineage` give the whole path), and showing the image
    again puts it back between them. Each hidden run is walked once, however long it is.
    """
    items = list(links)
    parents = {image_id: parent_id for image_id, parent_id, _ in items}
    hidden = {image_id for image_id, _, is_hidden in items if is_hidden}
    above: dict[int, int | None] = {}  # a hidden image -> its nearest shown ancestor

    def nearest_shown(start: int) -> int | None:
        run: list[int] = []
        key: int | None = start
        while key is not None and key in hidden and key not in above and key not in run:
            run.append(key)
            key = parents.get(key)
        # a root above, or hidden images whose links form a cycle: none
        found = None if key is None or key in run else above.get(key, key)
        above.update(dict.fromkeys(run, found))
        return found

    return [
        (image_id, nearest_shown(parent_id) if parent_id in hidden and parent_id else parent_id)
        for image_id, parent_id, is_hidden in items
        if not is_hidden
    ]


def _image_key(ref: int | str) -> int:
    if isinstance(ref, int):
        return check_id(ref, "image")
    text = ref.strip().lstrip("#")
    if not (text.isascii() and text.isdigit()):
        raise UsageError(f"{ref!r} is not an image id (a number such as 12)")
    return check_id(int(text), "image")
