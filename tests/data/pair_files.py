"""Helpers of the graphrel.data tests: pairs files written on the fly."""

from __future__ import annotations

import gzip
import json
import zipfile

import pandas as pd

from graphrel.data.datasets import iter_pairs
from graphrel.data.schema import PAIR_COLUMNS, RelevancePairs

HD_HEADER = "id,product_uid,product_title,search_term,relevance\n"


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def assert_user_error(excinfo, path, row=None):
    """The error names the file, the row (when given) and a fix."""
    msg = str(excinfo.value)
    assert path.name in msg
    assert "fix" in msg
    assert excinfo.value.fix
    if row is not None:
        assert f"row {row}" in msg
        assert excinfo.value.row == row


def generic_csv(tmp_path, rows, name="pairs.csv", header="query,product_id,product_text,grade"):
    return write(tmp_path / name, header + "\n" + "\n".join(rows) + "\n")


def synthetic_pairs(n_queries=50, per_query=3):
    rows = []
    for q in range(n_queries):
        for k in range(per_query):
            rows.append({"row_id": len(rows) + 1, "query_id": f"q{q}", "query": f"query {q}",
                         "product_id": f"p{q}-{k}", "product_text": f"product {k}",
                         "relevance": float(k % 3), "label": (k % 3) / 2})
    frame = pd.DataFrame(rows)[PAIR_COLUMNS]
    for col in ("query_id", "query", "product_id", "product_text"):
        frame[col] = frame[col].astype("str")
    return RelevancePairs(frame, label_min=0.0, label_max=2.0, source="synthetic")


def hd_zip(tmp_path, body, name="train.csv.zip"):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("train.csv", (HD_HEADER + body).encode("latin-1"))
    return path


def write_frame(frame, path, *, jsonl_blank_line_at=None, row_group_size=None):
    """Write ``frame`` in the format its name says (JSONL / NDJSON, Parquet, gzip or zip CSV,
    else CSV); optionally one blank JSONL line before record ``jsonl_blank_line_at``."""
    name = path.name
    if name.endswith(("jsonl", "ndjson")):
        lines = [json.dumps(r) for r in frame.to_dict("records")]
        if jsonl_blank_line_at is not None:
            lines.insert(jsonl_blank_line_at, "")
        path.write_text("".join(line + "\n" for line in lines))
    elif name.endswith(".parquet"):
        frame.to_parquet(path, row_group_size=row_group_size)
    elif name.endswith(".gz"):
        path.write_bytes(gzip.compress(frame.to_csv(index=False).encode()))
    elif name.endswith(".zip"):
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("pairs.csv", frame.to_csv(index=False))
    else:
        path.write_text(frame.to_csv(index=False))
    return path


def read_in_chunks(kind, path, chunk_size, **options):
    """(the chunks of iter_pairs, their frames concatenated)."""
    chunks = list(iter_pairs(kind, path, chunk_size=chunk_size, **options))
    return chunks, pd.concat([c.frame for c in chunks], ignore_index=True)
