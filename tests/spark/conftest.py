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
