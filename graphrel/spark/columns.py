"""The pair columns of a Spark DataFrame: their names and types, and the first bad row,
checked on the driver before any scoring starts.

The checks mirror the file loaders' (:mod:`graphrel.data.schema`): a missing column (with the
closest name found), a text column holding numbers or dates, and the first row with an empty
or missing query, query id, product id or product text. Rows are named by their input
file and 1-based row when the DataFrame carries them (:data:`FILE_COLUMN`,
:data:`ROW_COLUMN`: ``graphrel score --engine spark`` adds them from Parquet's ``_metadata``),
else by the values of the row's other pair columns.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphrel.data.schema import missing_column
from graphrel.errors import GraphrelInputError

__all__ = ["PairColumns", "FILE_COLUMN", "ROW_COLUMN", "TEXT_TYPES", "ID_TYPES", "check_pair_columns", "check_whole_numbers",
           "find_bad_row"]

FILE_COLUMN = "_graphrel_file"
"""Column with each row's input file (added by the command line, dropped before writing)."""

ROW_COLUMN = "_graphrel_row"
"""Column with each row's 0-based position in its input file (same)."""


@dataclass(frozen=True)
class PairColumns:
    """Which columns of a DataFrame hold the pair's fields.

    Attributes:
        query: query text column.
        product_id: product id column.
        product_text: product text column.
        query_id: query id column; None: the query text is the id (as ``graphrel score``).
    """

    query: str = "query"
    product_id: str = "product_id"
    product_text: str = "product_text"
    query_id: str | None = None

    def checked(self, command_line: bool = False) -> list[tuple[str, str, str, bool]]:
        """(column, what it holds, the option naming it, must be text), in the loaders' order;
        options as ``graphrel score`` spells them if ``command_line``, else as
        :func:`graphrel.spark.score_pairs`'s keywords."""
        fields = [(self.query, "query text", "query", True)] + \
            ([(self.query_id, "query id", "query_id", False)] if self.query_id else []) + \
            [(self.product_id, "product id", "product_id", False),
             (self.product_text, "product text", "product_text", True)]
        return [(column, what, f"--{key.replace('_', '-')}-column" if command_line else f"{key}_col=", text)
                for column, what, key, text in fields]

    def names(self) -> list[str]:
        return [column for column, *_ in self.checked()]


TEXT_TYPES = ("StringType", "VarcharType", "CharType")
"""Spark column types a text column may have."""

ID_TYPES = TEXT_TYPES + ("ByteType", "ShortType", "IntegerType", "LongType", "DecimalType")
"""Spark column types an id column may have (text or whole numbers, read as their digits)."""


def check_whole_numbers(**values) -> None:
    """Each keyword's value, unless None, must be a whole number >= 1 (not a bool).

    Raises:
        GraphrelInputError: naming the first keyword out of range.
    """
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise GraphrelInputError(f"{name} must be a whole number >= 1, got {value!r}",
                                     fix=f"pass {name}=N with N >= 1")


def check_pair_columns(df, columns: PairColumns, *, source: str | None = None, command_line: bool = False) -> None:
    """Names and types of the pair columns of ``df`` (no Spark job runs). The fixes name the
    command line's options if ``command_line``, else ``score_pairs``'s keywords.

    Raises:
        GraphrelInputError: a pair column missing (naming the closest column found), two
            fields mapped to one column, a text column that is not a string column, or an id
            column that is neither text nor a whole number.
    """
    names = columns.names()
    if len(set(names)) < len(names):
        raise GraphrelInputError(f"one column is given for two pair fields: {', '.join(names)}", path=source,
                                 fix="map the query, query id, product id and product text to different columns")
    types = {field.name: type(field.dataType).__name__ for field in df.schema.fields}
    found = [name for name in types if name not in (FILE_COLUMN, ROW_COLUMN)]
    for column, what, option, text in columns.checked(command_line):
        if column not in types:
            raise missing_column(found, column, source, f"pass {option} naming the column that holds the {what}")
        allowed = TEXT_TYPES if text else ID_TYPES
        if types[column] not in allowed:
            kind = types[column].removesuffix("Type").lower()
            raise GraphrelInputError(f"column {column!r} holds {kind} values, not {'text' if text else 'ids'}",
                                     path=source, fix=f"store {column!r} as text (strings), or pass {option} "
                                                      f"naming the column that holds the {what}")


def find_bad_row(df, columns: PairColumns, *, source: str | None = None) -> None:
    """Scan ``df`` once (on the cluster) for a missing or blank pair field.

    One Spark job reads only the pair columns. Reported: the first bad row (by file and row
    when ``df`` has them) and, of its fields, the first in the loaders' order of checks
    (query text, query id, product id, product text).

    Raises:
        GraphrelInputError: naming the file and 1-based row when ``df`` has
            :data:`FILE_COLUMN` / :data:`ROW_COLUMN`, else ``source`` and the row's values.
    """
    from pyspark.sql import functions as F

    checked = columns.checked()
    blank = [F.col(c).isNull() | F.col(c).cast("string").rlike(r"^\s*$") for c, *_ in checked]
    any_blank = blank[0]
    for condition in blank[1:]:
        any_blank = any_blank | condition
    located = FILE_COLUMN in df.columns and ROW_COLUMN in df.columns
    keep = [F.col(c).cast("string").alias(c) for c in columns.names()] + \
        ([F.col(FILE_COLUMN), F.col(ROW_COLUMN)] if located else [])
    flags = [condition.alias(f"_bad{i}") for i, condition in enumerate(blank)]
    row = df.where(any_blank).select(*keep, *flags)
    if located:
        row = row.orderBy(FILE_COLUMN, ROW_COLUMN)
    found = row.limit(1).collect()
    if not found:
        return
    values = found[0].asDict()
    column, what = next((c, w) for i, (c, w, *_) in enumerate(checked) if values[f"_bad{i}"])
    fix = f"fill in the {what} or drop the row"
    if located:
        raise GraphrelInputError(f"empty {what} (column {column!r})", path=values[FILE_COLUMN],
                                 row=int(values[ROW_COLUMN]) + 1, fix=fix)
    others = ", ".join(f"{c}={values[c]!r}" for c in columns.names() if c != column)
    raise GraphrelInputError(f"empty {what} (column {column!r}) in the row with {others}", path=source, fix=fix)
