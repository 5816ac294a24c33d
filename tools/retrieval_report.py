"""Run the retrieval stage by hand on a finished pipeline run and print its report section.

    python tools/retrieval_report.py --run-dir runs/home_depot --out runs/home_depot_retrieval \
        [--student_steps 3000 --ablation false ...]

Every field of :class:`graphrel.retrieval.stage.RetrievalConfig` is an option (``--NAME VALUE``).
The run directory is only read; everything goes under ``--out`` (retrievers, TREC runs,
retrieval.json, retrieval.md). Retrievers already built there with the same options are reused.
Bad options or inputs: one line, exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graphrel.errors import EXIT_USER_ERROR, GraphrelInputError  # noqa: E402
from graphrel.retrieval.stage import RetrievalConfig, run_retrieval  # noqa: E402


def _kind(field):
    """The parser of one option's text, from the field's type (``str(field.type)``: annotations
    are strings here): booleans true/false, ``none``/``null`` where None is allowed, tuples as
    comma-separated numbers."""
    text = str(field.type)
    if text == "bool":
        return lambda value: {"true": True, "false": False}[value.lower()]
    if text.startswith("tuple"):
        number = float if "float" in text else int
        return lambda value: tuple(number(v) for v in value.split(",") if v.strip())
    base = {"int": int, "float": float, "str": str}[text.split("|")[0].strip()]
    if "None" in text:
        return lambda value: None if value.lower() in ("none", "null") else base(value)
    return base


def _parser() -> argparse.ArgumentParser:
    from graphrel.options import ArgumentParser

    parser = ArgumentParser(prog="retrieval_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True, help="finished pipeline run directory (read only)")
    parser.add_argument("--out", required=True, help="output directory of the retrieval stage")
    for field in dataclasses.fields(RetrievalConfig):
        parser.add_argument(f"--{field.name}", type=_kind(field), default=field.default,
                            help=f"(default {field.default!r})")
    return parser


def main(argv: list[str] | None = None) -> int:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        args = _parser().parse_args(argv)
        config = RetrievalConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(RetrievalConfig)})
        start = time.perf_counter()
        run_retrieval(args.run_dir, args.out, config)
    except GraphrelInputError as error:
        print(f"retrieval_report: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    print((Path(args.out) / "retrieval.md").read_text())
    print(f"wall time: {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
