"""Stage ``split``: the run's pairs, split by query, with the transfer set. -> pairs.parquet"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from graphrel import run as R
from graphrel.data.datasets import load_dataset
from graphrel.data.split import split_by_query
from graphrel.pipeline.config import PipelineConfig
from graphrel.pipeline.protocols import hold_out_test_pairs


#: Splits whose labels no stage before the evaluation reads (they go to test_labels.parquet).
WITHHELD_SPLITS = ("test", "test_context")


def split_pairs(c: PipelineConfig, run_dir: Path) -> pd.DataFrame:
    """Load, validate and split the pairs; add the transfer set.
    -> pairs.parquet, test_labels.parquet, label_scale.json

    Queries are split 80/10/10 (``data``) by query text
    (:func:`~graphrel.data.split.split_by_query`), each test query's judged pairs halved into
    graph context and evaluated pairs (:func:`~graphrel.pipeline.protocols.hold_out_test_pairs`),
    and the transfer set added (split ``transfer``, unlabelled).

    The test queries' labels are withheld: ``pairs.parquet`` (what every later stage reads)
    has NaN ``relevance`` / ``label`` on ``test`` and ``test_context`` rows, and the labels go
    to ``test_labels.parquet``, which only the evaluation reads; so no stage before it can
    depend on them (changed test labels leave every output before the evaluation byte-identical).
    pairs.parquet is written last: its presence means the stage finished. Returns the pairs
    as written (reloaded if pairs.parquet exists).
    """
    path = run_dir / R.PAIRS
    if path.exists():
        return pd.read_parquet(path)
    pairs = load_dataset(c.data.kind, c.data.path, **c.data.options)
    if c.data.max_queries is not None:
        queries = np.sort(pairs.frame["query_id"].unique())
        keep = np.random.default_rng(c.seed).permutation(queries)[: c.data.max_queries]
        pairs = pairs.subset(pairs.frame["query_id"].isin(set(keep)).to_numpy())
    splits = split_by_query(pairs, val_fraction=c.data.val_fraction, test_fraction=c.data.test_fraction,
                            seed=c.seed)
    frames = [s.frame.assign(split=name) for name, s in splits.items()]
    labelled = hold_out_test_pairs(pd.concat(frames, ignore_index=True),
                                   context_fraction=c.evaluation.context_fraction, seed=c.seed)
    from graphrel.data.transfer import transfer_candidates

    transfer = transfer_candidates(labelled, tfidf_per_query=c.transfer.tfidf_per_query,
                                   random_per_query=c.transfer.random_per_query, seed=c.seed)
    transfer = transfer.drop(columns="source").assign(row_id=-1, relevance=np.nan, label=np.nan,
                                                       split="transfer")
    out = pd.concat([labelled, transfer[labelled.columns]], ignore_index=True)
    out.attrs = {}
    withheld = out["split"].isin(WITHHELD_SPLITS).to_numpy()
    R.write_json({"label_min": pairs.label_min, "label_max": pairs.label_max, "source": pairs.source},
                 run_dir / R.LABEL_SCALE)
    R.write_parquet(out.loc[withheld, ["query_id", "product_id", "relevance", "label"]].reset_index(drop=True),
                    run_dir / R.TEST_LABELS)
    out.loc[withheld, ["relevance", "label"]] = np.nan
    R.write_parquet(out, path)  # last: its presence marks the stage done
    return out
