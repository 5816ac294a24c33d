"""``graphrel knn``: the top-k products of the catalogue **by cross-encoder score** for every query of
a file, with a budget of CE calls per query (AXN's multi-round search over a saved index).

    graphrel knn --run-dir RUN --queries queries.csv --k 10 --budget 100 --rounds 5 --output top.parquet

The index is the one the k-NN evaluation saved (default ``RUN/knn/index/mf_ind``; ``--index``
names another). Round 1 CE-scores the dual encoder's (or BM25's) top budget/rounds products; each
later round solves the least squares over the index's product embeddings and scores the next
best. Output: Parquet ``query_id, rank, product_id, score, ce_calls`` (k rows per query, best
first; score = the teacher's exact logit; ce_calls = CE calls spent on that query), written
atomically. Bad input (budget < k, rounds < 1 or > budget, an empty query, a missing index or
teacher, an existing output) is one line naming the file and the fix; exit code 2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from graphrel.errors import GraphrelInputError

FIRST_ROUNDS = ("dual_encoder", "bm25")


def _check(k: int, budget: int, rounds: int, blend: float) -> None:
    if k < 1:
        raise GraphrelInputError(f"k must be >= 1, got {k}", fix="pass --k 10 (any whole number >= 1)")
    if budget < k:
        raise GraphrelInputError(f"the budget ({budget} CE calls per query) is smaller than k ({k})",
                                 fix="pass --budget >= --k: the answer is the top k of the products scored")
    if rounds < 1:
        raise GraphrelInputError(f"rounds must be >= 1, got {rounds}", fix="pass --rounds 5 (1 = retrieve and rerank)")
    if rounds > budget:
        raise GraphrelInputError(f"rounds ({rounds}) exceed the budget ({budget}): a round scores >= 1 product",
                                 fix="pass --rounds <= --budget")
    if not 0 <= blend <= 1:
        raise GraphrelInputError(f"blend must be in [0, 1], got {blend}", fix="pass --blend 0 (least squares only)")


def knn_search(queries, *, run_dir: str | Path, k: int = 10, budget: int = 100, rounds: int = 5,
               index_dir: str | Path | None = None, first_round: str = "dual_encoder", blend: float = 0.0,
               query_ids=None, teacher_batch_size: int = 128) -> pd.DataFrame:
    """Top-k products of the whole catalogue by CE score, B CE calls per query.

    Args:
        queries: Q non-empty query texts.
        run_dir: the run (its ``teacher/``; relative retriever paths of the index resolve in it).
        k: answer size (>= 1, <= budget); budget: CE calls per query B; rounds: R (1 <= R <= B).
        index_dir: a saved index (default ``RUN/knn/index/mf_ind``).
        first_round: ``dual_encoder`` or ``bm25``.
        blend: lambda in [0, 1] mixing the index's parametric query embedding into u.
        query_ids: (Q,) ids for the output (default: the query texts).

    Returns:
        ``query_id, rank, product_id, score, ce_calls`` (k rows per query, queries in input order).

    Raises:
        GraphrelInputError: a bad setting, a missing index or teacher.
    """
    from graphrel.retrieval.knn.calls import CrossEncoderCalls, teacher_pair_scores
    from graphrel.retrieval.knn.index_store import KnnIndex
    from graphrel.retrieval.knn.search import adaptive_search, round_sizes
    from graphrel.retrieval.serving.retriever import Retriever
    from graphrel.scoring.teacher_labelling import load_teacher

    _check(k, budget, rounds, blend)
    if first_round not in FIRST_ROUNDS:
        raise GraphrelInputError(f"unknown first round {first_round!r}", fix=f"pass one of {', '.join(FIRST_ROUNDS)}")
    run_dir = Path(run_dir)
    queries = [str(q) for q in queries]
    if not queries or any(not q.strip() for q in queries):
        raise GraphrelInputError("every query must be a non-empty text", fix="remove empty queries")
    index = KnnIndex.load(Path(index_dir) if index_dir else run_dir / "knn" / "index" / "mf_ind", run_dir=run_dir)
    if not (run_dir / "teacher" / "config.json").is_file():
        raise GraphrelInputError("no cross-encoder teacher (teacher/config.json)", path=run_dir,
                                 fix="pass the run directory of the index (--run-dir)")
    dual_encoder = Retriever.load(index.dual_encoder_dir)
    catalogue = dual_encoder.catalogue
    if len(catalogue) != index.item_embeddings.shape[0]:
        raise GraphrelInputError("the index and its dual encoder disagree on the catalogue", path=index.dual_encoder_dir,
                                 fix="rebuild the index")
    sizes = round_sizes(budget, rounds)
    first = dual_encoder if first_round == "dual_encoder" else Retriever.load(index.bm25_dir)
    ranked, _ = first.search_rows(queries, sizes[0])
    u_param = index.query_side(dual_encoder.encode_queries(queries)) if blend > 0 else None
    scorer = teacher_pair_scores(load_teacher(run_dir / "teacher"), queries, catalogue.texts,
                                 batch_size=teacher_batch_size)
    ids = np.asarray(queries if query_ids is None else query_ids, dtype=object)
    frames = []
    for q in range(len(queries)):
        calls = CrossEncoderCalls(scorer, name=queries[q])
        found = adaptive_search(lambda rows, q=q: calls(q, rows), ranked[q], sizes, k,
                                item_embeddings=index.item_embeddings,
                                query_embedding=None if u_param is None else u_param[q], blend=blend,
                                offset=index.offset, scale=index.scale)
        frames.append(pd.DataFrame({"query_id": ids[q], "rank": np.arange(1, len(found.rows) + 1, dtype=np.int64),
                                    "product_id": catalogue.product_ids[found.rows], "score": found.scores,
                                    "ce_calls": np.int64(calls.calls)}))
    return pd.concat(frames, ignore_index=True)


def knn_file(run_dir, queries_path, output, *, k: int = 10, budget: int = 100, rounds: int = 5, index_dir=None,
             first_round: str = "dual_encoder", blend: float = 0.0, query_column: str = "query",
             query_id_column: str | None = None, file_format: str | None = None) -> int:
    """:func:`knn_search` on every query of a file; write the Parquet output atomically.

    Returns:
        Number of rows written.

    Raises:
        GraphrelInputError: any bad input (checked before anything is written).
    """
    from graphrel.retrieval.serving.command import read_queries
    from graphrel.run import write_parquet

    output = Path(output)
    _check(k, budget, rounds, blend)
    if output.suffix.lower() != ".parquet":
        raise GraphrelInputError("output must end in .parquet", path=output, fix="name the output OUT.parquet")
    if output.exists():
        raise GraphrelInputError("output already exists", path=output, fix="delete it or choose another --output")
    ids, queries = read_queries(queries_path, query_column=query_column, query_id_column=query_id_column,
                                file_format=file_format)
    top = knn_search(queries, run_dir=run_dir, k=k, budget=budget, rounds=rounds, index_dir=index_dir,
                     first_round=first_round, blend=blend, query_ids=ids)
    write_parquet(top, output)
    return len(top)


def knn_command(argv: list[str]) -> None:
    """``graphrel knn`` (arguments without the command name)."""
    from graphrel.options import ArgumentParser, finite_number, whole_number

    parser = ArgumentParser(prog="graphrel knn", description=(
        "Top-k products of the catalogue by cross-encoder score for every query of a CSV / Parquet / JSONL file, "
        "spending --budget CE calls per query over --rounds rounds (AXN: adaptive retrieval over a matrix-"
        "factorisation index of CE scores). Output: OUT.parquet (query_id, rank, product_id, score = exact CE "
        "logit, ce_calls), written atomically."))
    parser.add_argument("--run-dir", required=True, help="the run directory (its teacher/ scores the pairs)")
    parser.add_argument("--queries", required=True, help="queries file (.csv, .parquet, .jsonl)")
    parser.add_argument("--output", required=True, help="output .parquet path (must not exist)")
    parser.add_argument("--k", type=whole_number(1, example=10), default=10, help="products per query, >= 1 (default 10)")
    parser.add_argument("--budget", type=whole_number(1, example=100), default=100,
                        help="CE calls per query, >= k (default 100)")
    parser.add_argument("--rounds", type=whole_number(1, example=5), default=5,
                        help="search rounds, 1..budget (default 5; 1 = retrieve and rerank)")
    parser.add_argument("--index", default=None, help="index directory (default RUN/knn/index/mf_ind)")
    parser.add_argument("--first-round", default="dual_encoder", choices=FIRST_ROUNDS,
                        help="retriever of the first round (default dual_encoder)")
    parser.add_argument("--blend", type=finite_number, default=0.0,
                        help="lambda in [0, 1]: weight of the index's query embedding in u (default 0)")
    parser.add_argument("--query-column", default="query", help="query text column (default: query)")
    parser.add_argument("--query-id-column", default=None, help="query id column (default: the query text)")
    parser.add_argument("--file-format", default=None, choices=[None, "csv", "parquet", "jsonl"],
                        help="override the format guessed from the suffix")
    args = parser.parse_args(argv)
    rows = knn_file(args.run_dir, args.queries, args.output, k=args.k, budget=args.budget, rounds=args.rounds,
                    index_dir=args.index, first_round=args.first_round, blend=args.blend,
                    query_column=args.query_column, query_id_column=args.query_id_column, file_format=args.file_format)
    print(f"wrote {rows:,} rows -> {args.output}")
