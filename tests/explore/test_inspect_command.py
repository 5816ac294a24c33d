"""Tests of graphrel.explore.command: `graphrel inspect` and its one-line errors on a tiny run."""

from __future__ import annotations

import pytest

from explore_run import busy_query, pairs, real_data, run_dir  # noqa: F401 (fixtures)
from graphrel.errors import GraphrelInputError
from graphrel.explore.command import inspect_command


@real_data
def test_bad_input_on_a_run(run_dir, pairs, busy_query, tmp_path):
    run = str(run_dir)
    known = set(pairs["query_id"])
    typo = next(t for t in (busy_query[:-1], busy_query + "s", busy_query[1:]) if t not in known)
    with pytest.raises(GraphrelInputError) as error:
        inspect_command(["--run-dir", run, "--query", typo])
    message = str(error.value)
    assert f"unknown query {typo!r}" in message and "closest: " in message and repr(busy_query) in message
    assert "\n" not in message and "fix:" in message

    product_id = pairs["product_id"].iloc[0]
    with pytest.raises(GraphrelInputError, match=r"unknown product id '.*x'; closest ids: "):
        inspect_command(["--run-dir", run, "--product-id", product_id + "x"])
    for hops in ("-1", "50"):
        with pytest.raises(GraphrelInputError, match="--hops: must be a whole number from 0 to 4"):
            inspect_command(["--run-dir", run, "--query", busy_query, "--hops", hops])
    with pytest.raises(GraphrelInputError, match="--max-per-hop: must be a whole number >= 1"):
        inspect_command(["--run-dir", run, "--query", busy_query, "--max-per-hop", "0"])
    with pytest.raises(GraphrelInputError, match="--format json needs an output file"):
        inspect_command(["--run-dir", run, "--query", busy_query, "--format", "json"])
    with pytest.raises(GraphrelInputError, match="output folder does not exist"):
        inspect_command(["--run-dir", run, "--query", busy_query, "--format", "png",
                         "--out", str(tmp_path / "missing" / "ego.png")])
    with pytest.raises(GraphrelInputError, match="needs --query"):
        inspect_command(["--run-dir", run, "--product-id", product_id, "--pair-product-id", product_id])
    with pytest.raises(GraphrelInputError, match="one of the arguments --query --product-id is required"):
        inspect_command(["--run-dir", run])  # argparse's own check, one line like every other error
