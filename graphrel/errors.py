"""User-facing errors.

Every problem the user can fix (a bad input file, a missing column, an unknown
checkpoint path, ...) raises :class:`GraphrelInputError` with one message that names
the file, the row (where there is one) and the fix. The ``graphrel`` command prints
that message on one line and exits with code 2, without a traceback.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Iterable

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


def did_you_mean(word: str, choices: Iterable[str], *, n: int = 1, cutoff: float = 0.6,
                 ignore_case: bool = False) -> list[str]:
    """The ``choices`` closest to a mistyped ``word``, best first, for a "did you mean" hint.

    ``difflib.get_close_matches``: at most ``n`` choices whose similarity ratio to ``word``
    is at least ``cutoff`` (0 to 1).

    Args:
        word: what the user typed.
        choices: the known names (config keys, column names, query texts, ...).
        n: how many suggestions at most.
        cutoff: lowest similarity ratio, in [0, 1].
        ignore_case: compare lower-cased; each suggestion is returned as spelled in
            ``choices`` (of choices equal but for case, the last).

    Returns:
        Up to ``n`` of ``choices``, most similar first; empty if none is close.

    Example:
        >>> did_you_mean("studnet", ["student", "teacher", "seed"])
        ['student']
    """
    if not ignore_case:
        return difflib.get_close_matches(word, list(choices), n=n, cutoff=cutoff)
    spelled = {choice.lower(): choice for choice in choices}
    return [spelled[c] for c in difflib.get_close_matches(word.lower(), list(spelled), n=n, cutoff=cutoff)]
