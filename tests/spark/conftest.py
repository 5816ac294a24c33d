"""The Spark tests' session: ``local[2]``, started once per test session.

Every Spark test skips, with the reason, when no Java runtime is found; pyspark itself is
part of README's install command (the ``spark`` extra), so a missing pyspark fails.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """A local[2] SparkSession (its JVM's output in a log file of the test session's temp folder)."""
    from graphrel.spark.session import java_available, local_session

    missing = java_available()
    if missing:
        pytest.skip(f"Spark tests need Java: {missing}")
    session = local_session("local[2]", log_file=tmp_path_factory.getbasetemp() / "spark.log")
    yield session
    session.stop()


WORDS = ("drill hose paint brush door hinge light bulb led garden cordless steel brass wood exterior interior "
         "roller cover knob nozzle reel cart kit set bit outdoor flood white black copper pipe valve faucet sink "
         "tile grout saw blade hammer nail screw bolt washer ladder shelf bracket lumber plank fence gate lock").split()


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory):
    """A run of ``configs/tiny_test.yaml`` (tiny random models: k-order student, BERM-O,
    BERT2DNN) on synthetic pairs: 600 products and 300 queries of hardware words, 8 judged
    products each, labels 1-3 growing with word overlap. About 15 s; needs no real data."""
    import numpy as np
    import pandas as pd

    from conftest import REPO_ROOT
    from graphrel.cli import main

    folder = tmp_path_factory.mktemp("spark_synthetic_run")
    rng = np.random.default_rng(0)
    products = {f"p{i:04d}": " ".join(rng.choice(WORDS, rng.integers(3, 9))) for i in range(600)}
    rows = []
    for _ in range(300):
        query = " ".join(rng.choice(WORDS, rng.integers(1, 4)))
        for product in rng.choice(list(products), 8, replace=False):
            overlap = len(set(query.split()) & set(products[product].split()))
            rows.append({"query": query, "product_id": product, "product_text": products[product],
                         "relevance": float(min(3, 1 + overlap + rng.integers(0, 2)))})
    pd.DataFrame(rows).drop_duplicates(["query", "product_id"]).to_csv(folder / "pairs.csv", index=False)
    run = folder / "run"
    assert main(["pipeline", "--config", str(REPO_ROOT / "configs" / "tiny_test.yaml"), "--data.kind", "generic",
                 "--data.path", str(folder / "pairs.csv"), "--data.options",
                 '{"label_column": "relevance", "label_min": 1, "label_max": 3}', "--run-dir", str(run),
                 "--no-progress"]) == 0
    return run
