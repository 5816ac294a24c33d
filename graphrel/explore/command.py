"""``graphrel inspect``: the command line of :mod:`graphrel.explore` (``graphrel.cli`` runs it)."""

from __future__ import annotations

import argparse
from pathlib import Path

from graphrel.errors import GraphrelInputError
from graphrel.explore.drawing import draw_png
from graphrel.explore.egograph import DEFAULT_LABEL_SPLITS, MAX_HOPS, check_hops, neighborhood
from graphrel.explore.explain import metapaths
from graphrel.explore.export import write_graphml, write_json
from graphrel.explore.inspected_run import InspectedRun
from graphrel.explore.tables import format_explanation, format_table
from graphrel.run import atomic_path

__all__ = ["FORMATS", "inspect_command"]

FORMATS = ("table", "json", "graphml", "png")


def _parser() -> argparse.ArgumentParser:
    from graphrel.options import ArgumentParser, whole_number

    parser = ArgumentParser(prog="graphrel inspect", description=(
        "Inspect the query-product graph of a run: the ego graph around a query or a product (teacher "
        "and student scores, human labels, split of every pair), and with --pair-product-id the metapath "
        "neighbours the k-order student read for one pair, with attention weights and contributions."))
    centre = parser.add_mutually_exclusive_group(required=True)
    centre.add_argument("--query", help="centre query: its exact text or query id")
    centre.add_argument("--product-id", help="centre product id")
    parser.add_argument("--run-dir", required=True, help="run directory of `graphrel pipeline`")
    parser.add_argument("--pair-product-id", help="also explain the student's score of (--query, this product)")
    parser.add_argument("--pair-product-text", help="text of --pair-product-id when that product is not in the graph")
    parser.add_argument("--hops", type=whole_number(0, MAX_HOPS, example=2), default=2,
                        help=f"hops around the centre, 0 to {MAX_HOPS} (default 2)")
    parser.add_argument("--max-per-hop", type=whole_number(1, example=10), default=None,
                        help="keep at most N new neighbours per node, highest teacher score first (default: all)")
    parser.add_argument("--format", default="table", choices=FORMATS,
                        help="table: print to the terminal (default); json: networkx node-link JSON; graphml; "
                             "png: a drawing. json/graphml/png need --out")
    parser.add_argument("--out", help="output file (json, graphml, png; optional for table)")
    parser.add_argument("--show-test-labels", action="store_true",
                        help="also show human labels of test pairs (hidden by default: held-out evaluation)")
    parser.add_argument("--no-student", action="store_true", help="skip student scores on edges (faster)")
    return parser


def _check_out(out: str | None, fmt: str) -> Path | None:
    if out is None:
        if fmt != "table":
            raise GraphrelInputError(f"--format {fmt} needs an output file",
                                     fix=f"add --out FILE.{'png' if fmt == 'png' else fmt}")
        return None
    path = Path(out)
    if path.is_dir():
        raise GraphrelInputError("output path is a directory", path=path, fix="give a file path to --out")
    if not path.parent.exists():
        raise GraphrelInputError("output folder does not exist", path=path.parent,
                                 fix="create it or choose another --out")
    return path


def inspect_command(argv: list[str]) -> None:
    """``graphrel inspect``: parse ``argv`` (without the command name) and inspect a run.

    Raises:
        GraphrelInputError: every user error, malformed or out-of-range options included
            (``graphrel`` prints it on one line, exit 2).
        SystemExit: from argparse for ``--help``.
    """
    args = _parser().parse_args(argv)
    out = _check_out(args.out, args.format)
    if args.pair_product_id is not None and args.query is None:
        raise GraphrelInputError("--pair-product-id explains a (query, product) pair and needs --query",
                                 fix="pass --query TEXT with --pair-product-id")
    check_hops(args.hops, args.max_per_hop)
    run = InspectedRun(args.run_dir)
    splits = DEFAULT_LABEL_SPLITS + (("test", "test_context") if args.show_test_labels else ())
    ego = neighborhood(run, query=args.query, product_id=args.product_id, hops=args.hops,
                       max_per_hop=args.max_per_hop, label_splits=splits, student=not args.no_student)
    explanation = None
    if args.pair_product_id is not None:
        explanation = metapaths(run, args.query, args.pair_product_id, product_text=args.pair_product_text,
                                label_splits=splits)
    try:
        if args.format == "table":
            text = format_table(ego) + ("\n\n" + format_explanation(explanation) if explanation else "")
            if out is None:
                print(text)
            else:
                with atomic_path(out) as tmp:
                    tmp.write_text(text + "\n", encoding="utf-8")
                print(f"wrote {out}")
            return
        if args.format == "json":
            write_json(ego, out, explanation)
        elif args.format == "graphml":
            write_graphml(ego, out)
        else:
            draw_png(ego, out)
    except OSError as error:
        raise GraphrelInputError(f"cannot write output ({error.strerror})", path=out,
                                 fix="choose a writable --out path") from None
    print(f"wrote {out} ({ego.number_of_nodes()} nodes, {ego.number_of_edges()} edges)")
    if args.format == "png" and ego.number_of_nodes() > 150 and args.max_per_hop is None:
        print("tip: --max-per-hop 15 keeps the highest-teacher-score neighbours of each node and the picture small")
    if explanation is not None:
        print(format_explanation(explanation))
