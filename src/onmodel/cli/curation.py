"""Curating a series from the CLI: star, rate, note and tag images; hide (delete), show again
and purge; and the ``character`` commands that fix a character (rename, hide, anchor, sheet).

Each command is one call into the studio, so a script using the library does the same thing;
``cli/app.py`` and ``cli/characters.py`` register them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from onmodel.cli.context import open_studio
from onmodel.cli.output import console, print_json, warn

if TYPE_CHECKING:
    from onmodel.handles import Image
    from onmodel.sheet import ModelSheet
    from onmodel.studio import Studio
    from onmodel.studio.curation import PurgeReport

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ImageArgument = Annotated[str, typer.Argument(help="Image id.")]
ImagesArgument = Annotated[list[str], typer.Argument(help="Image ids.")]
CharacterArgument = Annotated[str, typer.Argument(help="The character (slug, name or id).")]


# ------------------------------------------------------------------ annotations


def star(
    image: ImageArgument,
    off: Annotated[bool, typer.Option("--off", help="Take the star away.")] = False,
) -> None:
    """Star an image (or, with --off, unstar it)."""
    found = open_studio().annotate_image(image, starred=not off)
    console.print(f"#{found.id} {'starred' if found.starred else 'not starred'}", markup=False)


def rate(
    image: ImageArgument,
    rating: Annotated[int, typer.Argument(help="1 to 5; 0 clears the rating.")],
) -> None:
    """Rate an image from 1 to 5 (0 clears the rating)."""
    found = open_studio().annotate_image(image, rating=rating)
    console.print(f"#{found.id} rated {found.rating or 'none'}", markup=False)


def note(
    image: ImageArgument,
    text: Annotated[str, typer.Argument(help="The note; an empty text clears it.")],
) -> None:
    """Write a note on an image (it replaces the one before; "" clears it)."""
    found = open_studio().annotate_image(image, note=text)
    console.print(f"#{found.id} note: {found.note or '-'}", markup=False)


def tag(
    image: ImageArgument,
    tags: Annotated[list[str], typer.Argument(help="Tags (kept in lower case).")],
    remove: Annotated[bool, typer.Option("--remove", help="Take these tags off.")] = False,
) -> None:
    """Tag an image (or, with --remove, untag it); list images by tag with: onmodel images
    --tag TAG."""
    studio = open_studio()
    found = studio.image(image)
    now = studio.tag_image(found, tags, remove=remove)
    console.print(f"#{found.id} tags: {', '.join(now) or 'none'}", markup=False)


# ------------------------------------------------------------------ hiding and purging


def hide(images: ImagesArgument) -> None:
    """Hide (delete) images: they leave listings, trees, exports and pages but keep their
    lineage; onmodel unhide brings them back, onmodel purge removes them for good."""
    hidden = open_studio().hide_images(images)
    console.print(f"hidden: {_ids(hidden)} (onmodel unhide brings them back)", markup=False)


def unhide(images: ImagesArgument) -> None:
    """Show hidden images again."""
    shown = open_studio().unhide_images(images)
    console.print(f"shown again: {_ids(shown)}", markup=False)


def purge(
    subtree: Annotated[
        bool,
        typer.Option(
            "--subtree",
            help="Also purge the images made from a purged one, however deep, shown ones too "
            "(each is listed, with every session head that moves).",
        ),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Delete for good; without it, only say what would go.")
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Delete hidden images, sessions and characters for good, and the files nothing else
    uses; without --yes, say what would be deleted (and which shown images --subtree takes)."""
    report = open_studio().purge(subtree=subtree, dry_run=not yes)
    if json_out:
        print_json(report.to_dict())
        return
    if report.empty:
        console.print("nothing to purge: nothing is hidden")
        return
    what = _counted(report.images, "image")
    if report.hidden_images != report.images:
        what += f" ({report.hidden_images:,} hidden one by one)"
    if report.sessions:
        what += f", {_counted(len(report.sessions), 'session')} ({', '.join(report.sessions)})"
    if report.characters:
        characters = ", ".join(report.characters)
        what += f", {_counted(len(report.characters), 'character')} ({characters})"
    from onmodel.presentation import format_bytes  # the pages' sizes; imported when needed

    files = f"{_counted(report.files, 'file')} ({format_bytes(report.bytes) or '0 B'})"
    if not report.done:
        console.print(f"would purge {what}; {files}", markup=False)
        _print_shown(report)
        again = "onmodel purge --yes --subtree" if subtree else "onmodel purge --yes"
        console.print(f"nothing is deleted until: {again}", markup=False)
        return
    console.print(f"purged {what}; removed {files}", markup=False)
    _print_shown(report)
    if report.files_kept:
        console.print(
            f"kept {_counted(report.files_kept, 'file')} written in the last minutes, in case a "
            "write is using them: onmodel db check --fix removes them later",
            markup=False,
        )


def _print_shown(report: PurgeReport) -> None:
    """What a purge takes that was shown (``--subtree``), every image of it, and the heads it
    moves: said by the dry run before ``--yes``, and by the purge after, so nothing a user
    sees goes unannounced."""
    went = "go" if not report.done else "went"
    for (what, slug), images in report.taken.items():
        ids = ", ".join(f"#{key}" for key in images)
        console.print(
            f"shown in {what} {slug}, made from what is purged, so they {went} too: {ids}",
            markup=False,
        )
    moves = "moves" if not report.done else "moved"
    for slug, (old, new) in report.heads.items():
        to = f"#{new}" if new is not None else "its anchor"
        console.print(f"session {slug}'s head {moves} from #{old} to {to}", markup=False)


# ------------------------------------------------------------------ characters


def character_rename(
    character: CharacterArgument,
    name: Annotated[str | None, typer.Option("--name", help="Its new name.")] = None,
    slug: Annotated[str | None, typer.Option("--slug", help="Its new short name.")] = None,
) -> None:
    """Rename a character (its name, used by its next prompts, or its slug)."""
    found = open_studio().rename_character(character, name=name, slug=slug)
    console.print(f"character {found.slug}: {found.name}", markup=False)


def character_hide(character: CharacterArgument) -> None:
    """Hide (delete) a character with its sessions; onmodel purge removes it for good."""
    found = open_studio().hide_character(character)
    console.print(
        f"hidden: character {found.slug} and its sessions "
        f"(onmodel character unhide {found.slug} brings them back)",
        markup=False,
    )


def character_unhide(character: CharacterArgument) -> None:
    """Show a hidden character again."""
    found = open_studio().unhide_character(character)
    console.print(f"shown again: character {found.slug}", markup=False)


StrictOption = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Refuse an anchor whose background is not plain, that touches the frame's edges "
        "or is small in the frame (without it: a warning).",
    ),
]


def character_anchor(
    image: Annotated[str, typer.Argument(help="The shot to make its character's anchor.")],
    strict: StrictOption = False,
) -> None:
    """Make a shot its character's anchor (a picture of it alone, not of several): the next
    shots are drawn from it (and its own turnaround views, not the old anchor's); earlier
    ones keep the anchor they were made with."""
    studio = open_studio()
    found = studio.promote_anchor(image, strict=strict)
    console.print(f"{found.slug}'s anchor is now #{found.anchor_image_id}", markup=False)
    if not strict:
        warn_unclean(studio, found.anchor)


def warn_unclean(studio: Studio, anchor: Image | None) -> None:
    """A warning for each thing that makes a new anchor a poor reference (a busy background,
    the character cut off or small): every later shot is matched against it."""
    if anchor is not None and anchor.succeeded:
        for message in studio.anchor_warnings(anchor):
            warn(f"anchor #{anchor.id}: {message}")


def character_sheet(
    character: CharacterArgument,
    changes: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="TRAIT=VALUE (repeatable), e.g. hair='short bob'; list traits take "
            "comma-separated values; TRAIT= clears one.",
        ),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="A model sheet YAML that replaces it whole.")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Show a character's model sheet and its versions, or edit it (a new version: each
    image keeps the sheet it was made with)."""
    studio = open_studio()
    found = studio.character(character)
    if changes or file is not None:
        parsed = _sheet_changes(changes or [])
        version = studio.edit_sheet(found, file, changes=parsed)
        if json_out:
            print_json(version.to_dict())
            return
        console.print(f"{found.slug}'s model sheet is now version {version.number}", markup=False)
        print_sheet(version.sheet)
        return
    history = studio.sheet_history(found)
    if json_out:
        print_json([version.to_dict() for version in history])
        return
    console.print(f"{found.slug}'s model sheet, version {history[-1].number}:", markup=False)
    print_sheet(history[-1].sheet)
    for version in history:
        images = _counted(version.images or 0, "image")
        when = version.created_at.strftime("%Y-%m-%d %H:%M")
        console.print(f"  version {version.number}: {when} UTC, {images}", markup=False)


LIST_TRAITS = {"outfit_colors", "palette", "must_keep", "avoid"}


def _sheet_changes(pairs: list[str]) -> dict[str, Any]:
    """``["hair=short bob", "palette=#fff,#000"]`` -> the traits to set."""
    from onmodel.errors import UsageError

    found: dict[str, Any] = {}
    for pair in pairs:
        trait, equals, value = pair.partition("=")
        if not equals or not trait.strip():
            raise UsageError(f"--set takes TRAIT=VALUE, not {pair!r}")
        key = trait.strip()
        found[key] = (
            [part.strip() for part in value.split(",") if part.strip()]
            if key in LIST_TRAITS
            else value.strip()
        )
    return found


def print_sheet(sheet: ModelSheet) -> None:
    """The traits a sheet sets, one a line."""
    for key, value in sheet.model_dump().items():
        if value:
            console.print(f"  {key}: {trait_text(value)}", markup=False)


def trait_text(value: str | list[str]) -> str:
    """A trait as a person reads it: a list's items joined, nothing as ``-``."""
    return (", ".join(value) if isinstance(value, list) else value) or "-"


def _ids(images: list[Image]) -> str:
    return ", ".join(f"#{image.id}" for image in images)


def _counted(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
