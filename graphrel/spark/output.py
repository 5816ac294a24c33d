"""All-or-nothing Parquet output for Spark jobs: a directory appears complete or not at all.

Spark's own commit protocol moves finished task files into the output directory at job
commit, and a job killed during that commit can leave some of them there.
:func:`write_parquet_atomically` writes into ``OUT.incomplete`` beside the output, then
renames it to ``OUT`` once Spark has committed the job (one rename, atomic on local file
systems and HDFS; object stores copy). A killed or interrupted job leaves only
``OUT.incomplete``, which the next run (holding the output's lock) deletes before it writes
again, so a re-run writes the same output as an uninterrupted one.
"""

from __future__ import annotations

from graphrel.errors import GraphrelInputError

__all__ = ["INCOMPLETE_SUFFIX", "hadoop_path", "write_parquet_atomically"]

INCOMPLETE_SUFFIX = ".incomplete"


def hadoop_path(session, location: str):
    """(Hadoop FileSystem, Hadoop Path) of a local path or a URI (``hdfs://``, ``s3a://``)."""
    jvm = session.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(location)
    return path.getFileSystem(session.sparkContext._jsc.hadoopConfiguration()), path


def write_parquet_atomically(df, location: str) -> None:
    """Write ``df`` as a Parquet directory at ``location``, all or nothing.

    Raises:
        GraphrelInputError: ``location`` exists, or the finished directory cannot be renamed.
    """
    session = df.sparkSession
    fs, final = hadoop_path(session, location)
    if fs.exists(final):
        raise GraphrelInputError("output already exists", path=location,
                                 fix="choose another --output, or delete it to score again")
    fs_tmp, incomplete = hadoop_path(session, location + INCOMPLETE_SUFFIX)
    if fs_tmp.exists(incomplete):  # left by an interrupted run: its files are never reused
        fs_tmp.delete(incomplete, True)
    try:
        df.write.parquet(location + INCOMPLETE_SUFFIX)
    except BaseException:  # a failed or interrupted job: nothing of it is kept (a kill -9 leaves it
        fs_tmp.delete(incomplete, True)  # behind, and the next run deletes it first)
        raise
    if not fs.rename(incomplete, final):
        raise GraphrelInputError(f"could not rename the finished output {location + INCOMPLETE_SUFFIX}",
                                 path=location, fix="check the output folder's permissions")
