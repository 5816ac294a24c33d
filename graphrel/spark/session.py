"""The Spark session graphrel starts for ``graphrel score --engine spark``, and what it needs.

pyspark is an optional dependency (``pip install "graphrel[spark]"``, pyspark 4.x) and needs
a Java runtime (17 or newer). :func:`require_pyspark` and :func:`java_available` say what is
missing in one line; :func:`local_session` starts (or reuses) a session whose Python workers
run this interpreter, with Spark's console output reduced to errors, so that a bad input
still ends in the one line ``graphrel`` prints.

On a cluster, ``spark-submit`` makes the session: graphrel's functions take any
``SparkSession`` / ``DataFrame`` and never create one themselves.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

from graphrel.errors import GraphrelInputError

__all__ = ["require_pyspark", "java_available", "local_session", "LOG_CONFIG"]

LOG_CONFIG = Path(__file__).with_name("log4j2.properties")
"""Spark's log configuration for sessions graphrel starts: errors only, and no task-failure
reports from the executors (the driver re-raises them, and graphrel reports them once)."""

PANDAS_WARNING = "ignore:PySpark does not yet fully support pandas:FutureWarning"
"""pyspark 4.x warns on every pandas conversion under pandas 3 (graphrel's tested pandas);
the conversions graphrel uses (strings and floats through Arrow) are covered by its tests."""


def require_pyspark():
    """The ``pyspark`` module.

    Raises:
        GraphrelInputError: pyspark is not installed (the fix names the extra to install).
    """
    try:
        import pyspark
    except ImportError:
        raise GraphrelInputError("pyspark is not installed", fix='pip install "graphrel[spark]" (pyspark 4.x and '
                                                              'a Java 17+ runtime)') from None
    return pyspark


def java_available() -> str | None:
    """Why Spark cannot start here (no ``java`` on PATH or under ``JAVA_HOME``), or None."""
    home = os.environ.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        if not java.is_file():
            return f"no Java runtime: JAVA_HOME={home} has no bin/java; Spark needs Java 17 or newer"
    else:
        found = shutil.which("java")
        if not found:
            return "no Java runtime (java not on PATH and JAVA_HOME unset); Spark needs Java 17 or newer"
        java = Path(found)
    try:
        subprocess.run([java, "-version"], capture_output=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as error:
        return f"{java} -version failed ({error.__class__.__name__})"
    return None


@contextmanager
def _stderr_to(path: str | Path | None):
    """While Spark's JVM starts, its standard error (inherited, like every Python worker's the
    JVM starts later) is the file ``path``; this process's is restored after. None: unchanged."""
    if path is None:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def local_session(master: str | None = None, *, app_name: str = "graphrel", config: dict | None = None,
                  log_file: str | Path | None = None):
    """A Spark session on ``master`` for graphrel's command line (reused if one is running).

    Python workers run ``sys.executable`` (this environment's graphrel); the Spark UI and the
    console progress bar are off; Spark logs errors only (:data:`LOG_CONFIG`).

    Args:
        master: Spark master URL, e.g. ``local[2]`` (2 worker threads on this machine) or
            ``spark://host:7077``; None: spark-submit's ``--master`` when run by spark-submit,
            else ``local[2]``.
        app_name: the application's name in Spark.
        config: more Spark settings (``{"spark.executor.memory": "4g"}``).
        log_file: where the JVM's standard error goes if this call starts it (Spark's log
            lines, Java's start-up warnings, the Python workers' output); None: this
            process's standard error. A running session is reused as it is.

    Raises:
        GraphrelInputError: pyspark not installed, no Java runtime, or Spark failed to start.
    """
    require_pyspark()
    missing = java_available()
    if missing:
        raise GraphrelInputError(missing, fix="install a Java 17+ runtime, or use --engine local")
    from pyspark.sql import SparkSession

    # Python workers inherit this environment: keep the pandas warning out of their stderr too
    previous = os.environ.get("PYTHONWARNINGS")
    if PANDAS_WARNING not in (previous or ""):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [previous, PANDAS_WARNING]))
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    java_options = f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()}"
    if master is None and not os.environ.get("PYSPARK_GATEWAY_PORT"):  # not launched by spark-submit
        master = "local[2]"
    # spark-submit starts the JVM before this process (its settings stand): then nothing here starts it
    starts = SparkSession.getActiveSession() is None and not os.environ.get("PYSPARK_GATEWAY_PORT")
    builder = SparkSession.builder if master is None else SparkSession.builder.master(master)
    builder = builder.appName(app_name).config("spark.ui.showConsoleProgress", "false")
    if starts:  # a JVM of our own: this interpreter for the workers, no UI, errors-only logging
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # pyspark's default: python3 on PATH
        builder = (builder.config("spark.pyspark.python", sys.executable)
                   .config("spark.pyspark.driver.python", sys.executable)
                   .config("spark.ui.enabled", "false")
                   .config("spark.driver.extraJavaOptions", java_options)
                   .config("spark.executor.extraJavaOptions", java_options))
    for key, value in (config or {}).items():
        builder = builder.config(key, str(value))
    try:
        with _stderr_to(log_file if starts else None):
            session = builder.getOrCreate()
    except Exception as error:  # the JVM did not start: pyspark raises several types
        raise GraphrelInputError(f"Spark did not start on master {master!r} ({error.__class__.__name__}: "
                                 f"{str(error).splitlines()[0] if str(error) else ''})",
                                 fix="check --spark-master and the Java runtime") from None
    session.sparkContext.setLogLevel("ERROR")
    if starts and log_file is not None:
        logging.getLogger("graphrel").info("Spark started on %s; its own log (JVM, executors, Python workers): %s",
                                           session.sparkContext.master, log_file)
    return session
