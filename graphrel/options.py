"""Command-line options of ``graphrel score`` and ``graphrel inspect``: every value checked
where it is parsed, every mistake one line; reading options a --kind does not take refused.

:class:`ArgumentParser` turns argparse's usage-and-error output (two lines, exit 2 by
``SystemExit``) into a :class:`~graphrel.errors.GraphrelInputError`, which ``graphrel``
prints on one line (exit 2). The ``type=`` helpers reject out-of-range numbers before any
file is read or written: ``--batch-size -1`` used to score every pair with an empty
batch loop (scores were whatever memory held) and exit 0.
"""

from __future__ import annotations

import argparse
import math
from typing import Callable

from graphrel.errors import GraphrelInputError

__all__ = ["ArgumentParser", "whole_number", "finite_number", "reading_options", "READING_OPTIONS"]


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors raise :class:`GraphrelInputError`
    (``--help`` still prints and exits 0)."""

    def error(self, message: str):  # type: ignore[override]
        raise GraphrelInputError(f"{self.prog}: {message}", fix=f"see {self.prog} --help")


def whole_number(minimum: int, maximum: int | None = None, *, example: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` accepting a whole number in ``[minimum, maximum]``.

    ``"1e3"``, ``"2.5"``, ``"nan"`` and numbers out of range are rejected with a message
    that gives the range and an example value.
    """
    span = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
    hint = f" (e.g. {example})" if example is not None else ""

    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number {span}{hint}, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be a whole number {span}{hint}, got {text!r}")
        return value

    parse.__name__ = "whole number"
    return parse


def finite_number(text: str) -> float:
    """An argparse ``type`` accepting a finite real number (not ``nan`` or ``inf``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


#: A pairs file's reading options on the command line (``graphrel score``), as the loaders
#: name them, with the generic defaults.
READING_OPTIONS = {"query_column": "query", "query_id_column": None, "product_id_column": "product_id",
                    "product_text_column": "product_text", "label_column": None, "label_min": None,
                    "label_max": None, "encoding": None, "file_format": None}


def reading_options(args, accepted) -> dict:
    """The reading options of ``args.kind``'s loader (what was given, else the defaults);
    fills the generic column defaults into ``args``.

    Args:
        args: parsed options with ``kind`` and the :data:`READING_OPTIONS`.
        accepted: the options that kind's loader takes
            (:func:`graphrel.data.datasets.kind_options`).

    Raises:
        GraphrelInputError: an option the kind's loader does not take (it would be ignored).
    """
    given = {name: getattr(args, name) for name in READING_OPTIONS if getattr(args, name) is not None}
    refused = [name for name in given if name not in accepted]
    if refused:
        options = ", ".join("--" + name.replace("_", "-") for name in refused)
        takes = ", ".join("--" + name.replace("_", "-") for name in accepted if name in READING_OPTIONS)
        raise GraphrelInputError(f"{options} {'does' if len(refused) == 1 else 'do'} not apply to --kind {args.kind} "
                                 f"(its loader reads fixed columns and would ignore {'it' if len(refused) == 1 else 'them'})",
                                 fix=f"drop {options} (--kind {args.kind} takes {takes or 'none of them'}), or use "
                                     "--kind generic with the column options")
    for name, default in READING_OPTIONS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    return {name: getattr(args, name) for name in accepted  # the loader's own default where not given
            if name in READING_OPTIONS and not (name == "encoding" and args.encoding is None)}
