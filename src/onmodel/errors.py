"""Typed errors shared by the library and the CLI.

The CLI turns every :class:`OnmodelError` into one line on stderr and an exit code, so each
error carries the code it deserves: 2 when the user asked for something invalid, 1 when the
request was sound but the work failed.
"""

from __future__ import annotations


class OnmodelError(Exception):
    """Base of every error the library raises on purpose."""

    exit_code = 1


class UsageError(OnmodelError):
    """The request itself is invalid; retrying the same thing cannot help."""

    exit_code = 2


class NotFoundError(UsageError):
    """A named character, session or image does not exist."""


class DuplicateError(UsageError):
    """A name that must be unique is already taken."""


class InvalidSlugError(UsageError):
    """A name cannot be used as a slug."""


class TemplateError(UsageError):
    """A prompt template is missing, malformed or asks for an unknown variable."""


class InvalidImageError(UsageError):
    """A file given as an image cannot be read as a supported image."""


class NoImageFileError(UsageError):
    """An image has no file to read: it is still pending, or it failed.

    ``status`` says which, so a caller can wait for a pending shot or retry a failed one.
    """

    def __init__(self, message: str, *, status: str) -> None:
        super().__init__(message)
        self.status = status


class MissingKeyError(UsageError):
    """A provider needs an API key that is not set, so its shot cannot start.

    Raised while planning, before anything is recorded: a shot that cannot reach its provider
    leaves no failed image behind. ``variable`` names the environment variable to set.
    """

    def __init__(self, message: str, *, variable: str) -> None:
        super().__init__(message)
        self.variable = variable


class EmptyRequestError(UsageError):
    """A shot asks for nothing (no text, pose, outfit, expression, scene or action).

    Making the character again as it is must be asked for explicitly (``same=True``), so an
    empty call is never a paid shot by accident.
    """


class ValidationError(UsageError):
    """A request breaks a rule of the chosen model (size, quality, prompt length, ...)."""


class InputError(ValidationError, ValueError):
    """Text, a number or a file outside what onmodel accepts (control characters, overlong).

    Also a ``ValueError`` so that, raised inside a pydantic validator, it is reported under the
    field's name like any other invalid value.
    """


class RetiredModelError(ValidationError):
    """The model has been shut down; the message names the date and a replacement."""


class BudgetError(UsageError):
    """The estimated cost of a request could exceed the limit the user set."""


class DatabaseTooNewError(OnmodelError):
    """The database was migrated by a newer onmodel than this one."""


class DatabaseUnavailableError(OnmodelError):
    """The database cannot be reached (a shared server down, a wrong URL or password)."""


class GenerationError(OnmodelError):
    """A provider failed to produce an image; the failed image row keeps the details.

    It says what a caller needs to decide, not how to say it: ``image_id`` names the recorded
    row and ``retryable`` whether running it again can help (an exhausted quota cannot). The
    CLI words the advice; a batch gives its own.
    """

    def __init__(
        self,
        message: str,
        *,
        image_id: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.image_id = image_id
        self.retryable = retryable
        self.retry_after = retry_after
        """Seconds the provider's API asked to wait (a rate limit): a batch holds its next
        starts that long rather than meet the same limit again."""
