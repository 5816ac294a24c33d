"""User-facing errors.

Every problem the user can fix (a bad input file, a missing column, an unknown
checkpoint path, ...) raises :class:`GraphrelInputError` with one message that names
the file, the row (where there is one) and the fix. The ``graphrel`` command prints
that message on one line and exits with code 2, without a traceback.
"""

from __future__ import annotations

from pathlib import Path

EXIT_USER_ERROR = 2


class GraphrelInputError(ValueError):
    """A problem with the user's input that the user can fix.

    Args:
        message: what is wrong.
        path: the file concerned, if any.
        row: 1-based data row (header excluded) concerned, if any.
        fix: what the user should do about it.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, row: int | None = None,
                 fix: str | None = None) -> None:
        self.path = None if path is None else str(path)
        self.row = row
        self.fix = fix
        parts = []
        if self.path is not None:
            parts.append(f"{self.path}" + (f", row {row}" if row is not None else ""))
        parts.append(message)
        text = ": ".join(parts)
        if fix:
            text += f" (fix: {fix})"
        super().__init__(text)
