"""Parquet store: one file of string columns, replaced atomically on write.

Every column is a nullable string holding the codec's canonical text (null:
the record has no such column), so `pandas.read_parquet` and any Arrow tool
read it. Each write rewrites the file through a temporary file and a rename:
a reader, or a process killed mid-write, only ever sees a complete file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Final

import attrs

from .._lazy import pa, pq
from ..exceptions import StoreError
from ._appended import AppendCursor
from ._clock import SYSTEM_CLOCK, Clock
from ._columns import check_column_name
from ._csv import _CsvFormat
from ._file_store import FileStore
from ._files import FileFormat, FileState, atomic_write, file_state, open_regular
from ._new_records import NewRecords
from ._records import (
    ARROW_THREADS,
    Batch,
    Columns,
    Cursor,
    Record,
    TableRecords,
    as_records,
    repeated,
    strings,
)
from ._schema import CODEC, FUNCTION, META_COLUMNS, TIMESTAMP, is_meta

__all__ = ["open_parquet"]

#: The journal is folded in once it holds this many records, or half as
#: many as the compacted file, whichever is more. A fold rewrites the file
#: under the store's lock, while every other writer waits: folding at half
#: (each record rewritten about three times in all, not five as at a
#: quarter) and not before 10,000 keeps that wait a small share of each
#: record's time; a reader parses the journal with Arrow, as a CSV store.
_MIN_JOURNAL: Final = 10_000
#: Schema metadata naming the journal last folded into the file.
_FOLDED: Final = b"stet.folded_journal"


@attrs.frozen
class _ParquetCursor:
    state: FileState  # of the compacted file
    columns: tuple[str, ...]  # its columns
    rows: int  # records in it
    journal: Cursor | None  # the journal's cursor
    pending: int  # records in the journal
    folded: bool = False  # the journal is a leftover already in the file


def _with_journal(main: pa.Table, journal: Sequence[Record]) -> Columns:
    """The compacted records followed by the journal's, as one set of columns."""
    names = list(main.column_names)
    names += [c for c in {k: None for row in journal for k in row} if c not in names]

    def load(name: str) -> list[str | None]:
        head = (
            main.column(name).to_pylist() if name in main.column_names else [None] * main.num_rows
        )
        return head + [row.get(name) for row in journal]

    return Columns(names, main.num_rows + len(journal), load)


class _ParquetFormat(FileFormat):
    """A compacted Parquet file plus a CSV journal of newer records.

    Records are appended to ``STORE.journal.csv`` (cheap, crash-safe, read
    incrementally like a CSV store) and folded into the Parquet file when
    the journal grows past half of the file (so every record is
    rewritten a bounded number of times: O(1) amortized) and when the
    writing process exits.
    """

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.journal = _CsvFormat(self.path + ".journal.csv")

    def scan(
        self, cursor: Cursor | None, *, every_column: bool = False
    ) -> tuple[Batch, Cursor | None, bool]:
        state = file_state(self.path)
        if state is None:
            return [], None, True
        if isinstance(cursor, _ParquetCursor) and cursor.state == state:
            rows, journal, complete = self.journal.scan(cursor.journal)
            if journal is None and cursor.journal is None:  # still no journal
                return [], cursor, False
            if journal is cursor.journal:  # nothing new (the same cursor: a cheap check)
                return [], cursor, False
            if not complete:
                pending = cursor.pending + len(rows)
                return rows, attrs.evolve(cursor, journal=journal, pending=pending), False
        for _ in range(5):  # a compaction by another process may come in between
            table, state, names, folded = self._read_table(every_column)
            journal_records, journal, _ = self.journal.scan(None)
            if file_state(self.path) == state:
                break
        # A writer killed between replacing the file and deleting the journal
        # it folded in leaves that journal behind: its records are in the file.
        leftover = isinstance(journal, AppendCursor) and _journal_mark(journal) == folded
        rows = [] if leftover else as_records(journal_records)
        records = _with_journal(table, rows) if rows else Columns.of_arrow(table)
        cursor = _ParquetCursor(state, names, table.num_rows, journal, len(rows), leftover)
        return records, cursor, True

    def _read_table(
        self, every_column: bool = True
    ) -> tuple[pa.Table, FileState, tuple[str, ...], str | None]:
        """The compacted records (only the index's columns unless asked), all
        names, and the mark of the journal last folded in."""
        try:
            with open(open_regular(self.path), "rb") as f:
                st = os.fstat(f.fileno())
                if st.st_size == 0:
                    raise self._error(
                        "is empty (0 bytes), so it is not a Parquet store written by "
                        "stet; it is left untouched (move it away to start a new store)"
                    )
                # No pre-buffering: it reads the Python file from Arrow's I/O
                # threads, which can abort the interpreter at exit (see ARROW_THREADS).
                parquet = pq.ParquetFile(f, pre_buffer=False)
                schema = parquet.schema_arrow
                names = self._check_schema(schema)
                mark = (schema.metadata or {}).get(_FOLDED)
                wanted = [
                    n for n in names if every_column or not is_meta(n) or n in (FUNCTION, CODEC)
                ]
                shared: list[str] = [
                    n for n in (FUNCTION, CODEC) if n in wanted and not every_column
                ]
                if shared:
                    # A few texts repeated in every record: read as a dictionary,
                    # not one string a record (a third of opening at 10**7).
                    f.seek(0)
                    parquet = pq.ParquetFile(f, pre_buffer=False, read_dictionary=shared)
                table = parquet.read(columns=wanted, use_threads=ARROW_THREADS)
                table.validate(full=True)  # e.g. strings that are not UTF-8
        except StoreError:
            raise
        except (OSError, pa.ArrowException, UnicodeDecodeError) as exc:
            raise self._error(f"cannot be read as Parquet: {exc}") from None
        state = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        return table, state, names, self._mark_text(mark)

    def _mark_text(self, mark: bytes | None) -> str | None:
        if mark is None:
            return None
        try:
            return mark.decode("utf-8")
        except UnicodeDecodeError:
            raise self._error(
                f"its footer's {_FOLDED.decode()} entry is {mark[:40]!r}, not text, so the "
                "file was not written by stet or is damaged; it is left untouched"
            ) from None

    def _check_schema(self, schema: pa.Schema) -> tuple[str, ...]:
        # pandas may add an index column; it is not a record column.
        names = tuple(n for n in schema.names if not n.startswith("__index_level_"))
        if TIMESTAMP not in names:
            raise self._error(
                f"has no {TIMESTAMP} column (columns: {list(names)}), so it is not a stet "
                "store; it is left untouched"
            )
        for name in names:
            check_column_name(name, self.path)
            column_type = schema.field(name).type
            if not (
                pa.types.is_string(column_type)
                or pa.types.is_large_string(column_type)
                or pa.types.is_null(column_type)
            ):
                raise self._error(f"column {name!r} has type {column_type}, not string")
        return names

    def after_fork(self) -> None:
        self.journal.after_fork()

    def unchanged(self, cursor: Cursor | None) -> bool:
        if not isinstance(cursor, _ParquetCursor) or file_state(self.path) != cursor.state:
            return False
        if cursor.journal is None:
            return file_state(self.journal.path) is None
        return self.journal.unchanged(cursor.journal)

    def encode(self, rows: Sequence[Record], cursor: Cursor | None) -> object:
        if not isinstance(cursor, _ParquetCursor) or cursor.folded:
            return None
        return self.journal.encode(rows, cursor.journal)

    def append(
        self, rows: Sequence[Record], cursor: Cursor | None, encoded: object = None
    ) -> Cursor:
        if not isinstance(cursor, _ParquetCursor):
            return self.rewrite(rows, cursor)
        if cursor.folded:  # finish the interrupted fold first (the lock is held)
            self._drop_journal()
            cursor = attrs.evolve(cursor, journal=None, folded=False)
            encoded = None
        journal = self.journal.append(rows, cursor.journal, encoded)
        # Not attrs.evolve, which costs several microseconds more under the lock.
        cursor = _ParquetCursor(
            cursor.state, cursor.columns, cursor.rows, journal, cursor.pending + len(rows)
        )
        if cursor.pending >= max(_MIN_JOURNAL, cursor.rows // 2):
            return self.fold(cursor)
        return cursor

    def fold(self, cursor: Cursor | None) -> Cursor | None:
        """Fold the journal into the Parquet file (the caller holds the lock)."""
        if not isinstance(cursor, _ParquetCursor) or not cursor.pending:
            return cursor
        table, _, _, _ = self._read_table()
        journal, journal_cursor, _ = self.journal.scan(None, every_column=True)
        rows = as_records(journal)
        if rows:
            names = list(table.column_names)
            names += [c for c in {k: None for row in rows for k in row} if c not in names]
            extra = _table(rows, names)
            table = pa.concat_tables([_widen(table, names), extra])
        mark = _journal_mark(journal_cursor) if isinstance(journal_cursor, AppendCursor) else None
        return self._write(table, mark)

    def rewrite(self, rows: Sequence[Record], cursor: Cursor | None) -> Cursor:
        names: dict[str, None] = {}
        mark = None
        if isinstance(cursor, _ParquetCursor):
            names.update(dict.fromkeys(cursor.columns))
            if isinstance(cursor.journal, AppendCursor):  # ``rows`` hold its records
                mark = _journal_mark(cursor.journal)
        else:  # no file: a journal is what a reset killed midway left
            self._drop_journal()
        whole = rows if isinstance(rows, NewRecords | TableRecords) else None
        for row in rows if whole is None else [dict.fromkeys(whole.names)]:
            names.update(dict.fromkeys(c for c in row if c not in META_COLUMNS))
        names.update(dict.fromkeys(META_COLUMNS))
        return self._write(_table(rows, list(names)), mark)

    def _write(self, table: pa.Table, folded: str | None = None) -> _ParquetCursor:
        """Replace the file with ``table``; ``folded`` marks the journal it took in."""
        if folded is not None:
            metadata = {**(table.schema.metadata or {}), _FOLDED: folded.encode()}
            table = table.replace_schema_metadata(metadata)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        state = atomic_write(self.path, sink.getvalue().to_pybytes())
        # The journal's records are in the file now. A writer killed right
        # here leaves the journal behind; the mark makes readers ignore it.
        self._drop_journal()
        return _ParquetCursor(state, tuple(table.column_names), table.num_rows, None, 0)

    def _drop_journal(self) -> None:
        try:
            os.unlink(self.journal.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(
                self.journal.path, f"cannot be removed: {exc.strerror or exc}"
            ) from None


def _journal_mark(cursor: AppendCursor) -> str:
    """Which journal, as of which size: device, inode, size and a digest of its last bytes.

    The digest matters: a new journal often gets the deleted one's inode
    number, and rows of equal length make equal sizes; its last record's
    timestamp (to the microsecond) tells it apart.
    """
    dev, ino, size, _ = cursor.state
    return f"{dev}:{ino}:{size}:{hashlib.sha256(cursor.tail).hexdigest()[:32]}"


def _table(rows: Sequence[Record], names: Sequence[str]) -> pa.Table:
    if isinstance(rows, NewRecords):
        return pa.table(
            {
                c: strings(rows.column(c))
                if c in rows.key_names
                else repeated(rows.meta.get(c), len(rows))
                for c in names
            }
        )
    if isinstance(rows, TableRecords):
        return _widen(rows.table, names)
    return pa.table({c: strings([row.get(c) for row in rows]) for c in names})


def _widen(table: pa.Table, names: Sequence[str]) -> pa.Table:
    for name in names:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, type=pa.string()))
    return table.select(list(names)).cast(pa.schema([(n, pa.string()) for n in names]))


def open_parquet(path: str, *, clock: Clock = SYSTEM_CLOCK) -> FileStore:
    """The Parquet store at ``path`` (absolute)."""
    return FileStore(path, _ParquetFormat(path), record_files=("", ".journal.csv"), clock=clock)
