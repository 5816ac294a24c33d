"""graphrel on Apache Spark: score and retrieve where one machine is not enough.

Optional: ``pip install "graphrel[spark]"`` (pyspark 4.x) and a Java 17+ runtime.

- :func:`score_pairs`: a DataFrame of pairs plus a ``score`` column from any student.
- :func:`retrieve`: the top-k products of each query of a DataFrame, from a retriever
  directory (one row per query and rank).
- ``graphrel score --engine spark`` (:mod:`graphrel.spark.command`): Parquet in, Parquet out.

Models are loaded once per executor Python worker and kept for every later batch.
"""

from graphrel.spark.retrieval import retrieve
from graphrel.spark.scoring import score_pairs

__all__ = ["score_pairs", "retrieve"]
