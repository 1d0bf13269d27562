"""What a shared directory's fold keeps, written from its files' own lines where it can.

``stet reset --where`` folds the settled files into one without the records
it removes. Spelling each kept record again was most of its time at a
million records; a kept line the writer would spell the same is copied
from the file it was read from instead (see `._csv_kept`), when each file
has the new file's header and no run is in two files. The bytes are those
`write_compacted` spells (``tests/test_shared_dir_reset.py`` checks it
differentially); anything else is spelled as before.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any, overload

from .._lazy import np, pa
from ._csv import format_rows, header_for
from ._csv_kept import kept_body, line_lengths
from ._files import open_regular
from ._records import Record, TableRecords
from ._shared_files import FilesRead

__all__ = ["FoldedRecords"]


class FoldedRecords(Sequence[Record]):
    """The records of a fold's files but the doomed, as a sequence of records.

    Args:
        table: The files' records as read (one per run).
        doomed: A boolean numpy array over ``table``'s rows.
        read: The read ``table`` is, if a read of the files by `read_once_each`.
    """

    def __init__(self, table: pa.Table, doomed: Any, read: FilesRead | None) -> None:
        self._table, self._doomed, self._read = table, doomed, read
        self._kept: TableRecords | None = None

    @property
    def kept(self) -> TableRecords:
        if self._kept is None:
            self._kept = TableRecords(self._table.filter(pa.array(~self._doomed)))
        return self._kept

    def __len__(self) -> int:
        return len(self._doomed) - int(np.count_nonzero(self._doomed))

    @overload
    def __getitem__(self, index: int) -> Record: ...
    @overload
    def __getitem__(self, index: slice) -> list[Record]: ...
    def __getitem__(self, index: int | slice) -> Record | list[Record]:
        return self.kept[index]

    def file_bytes(self) -> bytes:
        """The folded file: a header and the kept records, as `write_compacted` spells them."""
        header = self._header()
        copied = self._copied(header)
        body = format_rows(self.kept, header) if copied is None else b"".join(copied)
        return ",".join(header).encode() + b"\n" + body

    def _header(self) -> tuple[str, ...]:
        """`header_for` the kept records, from the first kept record of each column alone."""
        keep = ~self._doomed
        firsts = set()
        for column in self._table.columns:
            held = np.flatnonzero(column.is_valid().to_numpy(zero_copy_only=False) & keep)
            if len(held):
                firsts.add(int(held[0]))
        few = self._table.take(pa.array(sorted(firsts), pa.int64()))
        return header_for(TableRecords(few), ())

    def _copied(self, header: tuple[str, ...]) -> list[Any] | None:
        read = self._read
        if read is None or not read.whole or sum(read.counts) != self._table.num_rows:
            return None
        pieces: list[Any] = []
        row = 0
        for path, state, (names, start, stop), count in zip(
            read.paths, read.states, read.layouts, read.counts, strict=True
        ):
            if names != header:
                return None
            part = self._table.slice(row, count)
            doomed = self._doomed[row : row + count]
            row += count
            if count == 0 or doomed.all():
                continue
            data = _bytes_of(path, state)
            if data is None:
                return None

            def spell(rows: Any, part: pa.Table = part) -> bytes:
                return format_rows(TableRecords(part.take(pa.array(rows))), header)

            lengths = functools.partial(line_lengths, part, len(header))
            body = kept_body(data, start, stop, doomed, lengths, spell)
            if body is None:
                return None
            pieces += body
        return pieces


def _bytes_of(path: str, state: tuple[int, int, int, int]) -> bytes | None:
    """The file's bytes if it is still as ``state`` saw it, else None."""
    try:
        fd = open_regular(path)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != state:
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read()
    finally:
        os.close(fd)
    return data if len(data) == state[2] else None
