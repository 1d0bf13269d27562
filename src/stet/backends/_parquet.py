"""Parquet store: one file of string columns, replaced atomically on write.

Every column is a nullable string holding the codec's canonical text (null:
the record has no such column), so `pandas.read_parquet` and any Arrow tool
read it. Each write rewrites the file through a temporary file and a rename:
a reader, or a process killed mid-write, only ever sees a complete file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import attrs
import pyarrow as pa
import pyarrow.parquet as pq

from ..exceptions import StoreError
from ._base import META_COLUMNS, TIMESTAMP, Cursor, Row, Table, check_column_name
from ._files import FileFormat, FileState, atomic_write, file_state

__all__ = ["ParquetBackend"]


@attrs.frozen
class _ParquetCursor:
    state: FileState
    columns: tuple[str, ...]


class _ParquetFormat(FileFormat):
    def scan(
        self, cursor: Cursor | None, *, every_column: bool = False
    ) -> tuple[list[Row], Cursor | None, bool]:
        state = file_state(self.path)
        if state is None:
            return [], None, True
        if isinstance(cursor, _ParquetCursor) and cursor.state == state:
            return [], cursor, False
        table, state = self._read_table()
        columns = tuple(table.column_names)
        rows = [{c: v for c, v in record.items() if v is not None} for record in table.to_pylist()]
        return rows, _ParquetCursor(state, columns), True

    def _read_table(self) -> tuple[pa.Table, FileState]:
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                if st.st_size == 0:
                    raise self._error(
                        "is empty (0 bytes), so it is not a Parquet store written by "
                        "stet; it is left untouched (move it away to start a new store)"
                    )
                table = pq.read_table(f)
        except StoreError:
            raise
        except (OSError, pa.ArrowException) as exc:
            raise self._error(f"cannot be read as Parquet: {exc}") from None
        state = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        # pandas may add an index column; it is not a record column.
        keep = [c for c in table.column_names if not c.startswith("__index_level_")]
        table = table.select(keep)
        if TIMESTAMP not in keep:
            raise self._error(
                f"has no {TIMESTAMP} column (columns: {keep}), so it is not a stet "
                "store; it is left untouched"
            )
        for name, column_type in zip(keep, table.schema.types, strict=True):
            check_column_name(name, self.path)
            if not (
                pa.types.is_string(column_type)
                or pa.types.is_large_string(column_type)
                or pa.types.is_null(column_type)
            ):
                raise self._error(f"column {name!r} has type {column_type}, not string")
        return table, state

    def append(self, rows: Sequence[Row], cursor: Cursor | None) -> Cursor:
        old: list[Row] = []
        if cursor is not None:
            old, _, _ = self.scan(None)
        return self.rewrite([*old, *rows], cursor)

    def rewrite(self, rows: Sequence[Row], cursor: Cursor | None) -> Cursor:
        columns: dict[str, None] = {}
        if isinstance(cursor, _ParquetCursor):
            columns.update(dict.fromkeys(cursor.columns))
        for row in rows:
            columns.update(dict.fromkeys(c for c in row if c not in META_COLUMNS))
        columns.update(dict.fromkeys(META_COLUMNS))
        table = pa.table(
            {c: pa.array([row.get(c) for row in rows], type=pa.string()) for c in columns}
        )
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        state = atomic_write(self.path, sink.getvalue().to_pybytes())
        return _ParquetCursor(state, tuple(columns))


class ParquetBackend(Table):
    """A store in a Parquet file (``.parquet``): string columns, read by pandas/Arrow."""

    format_class = _ParquetFormat
    extensions = (".parquet",)
