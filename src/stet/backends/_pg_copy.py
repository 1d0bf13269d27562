"""Many new records into a PostgreSQL store at once: the rows `COPY` sends.

`stet.mark_done` records a million runs in one write. Their records share
their metadata and differ only in their key texts (`NewRecords`), so only
the key columns and each record's ``_stet_key`` travel through ``COPY``,
as CSV made by the `csv` module in one call per chunk; the metadata goes
once, as parameters of the ``INSERT ... SELECT`` that adds them (see
`._pg_rows`). The ``_stet_key`` texts are exactly those of `key_json` (a
differential property test checks it), made column by column.
"""

from __future__ import annotations

import csv
import io
import json.encoder
from collections.abc import Iterator, Sequence
from itertools import islice, starmap
from operator import itemgetter
from typing import Final

from ._new_records import NewRecords

__all__ = ["copy_chunks", "key_jsons"]

#: Rows formatted per chunk sent to the server (bounds the memory of the text).
_CHUNK: Final = 100_000
# What json.dumps(..., ensure_ascii=False) quotes a string with (C when available).
_quote = json.encoder.encode_basestring


def _texts(records: NewRecords, i: int) -> list[str]:
    return list(map(itemgetter(i), records.keys))


def key_jsons(records: NewRecords) -> list[str]:
    """Each record's ``_stet_key``: `key_json` of its key texts, in order."""
    names = records.key_names
    order = sorted(range(len(names)), key=names.__getitem__)
    # '{"a":%s,"b":%s}' with format()'s braces doubled in the names' JSON.
    template = (
        "{{"
        + ",".join(_quote(names[i]).replace("{", "{{").replace("}", "}}") + ":{}" for i in order)
        + "}}"
    )
    columns = [list(map(_quote, _texts(records, i))) for i in order]
    if not columns:  # a function of no key parameters
        return ["{}"] * len(records)
    return list(starmap(template.format, zip(*columns, strict=True)))


def copy_chunks(records: NewRecords, keys: Sequence[str]) -> Iterator[str]:
    """CSV of each record's key texts (as `NewRecords.key_names`) and its ``_stet_key``.

    Every field is quoted, so an empty text stays an empty text (an
    unquoted empty field is NULL to ``COPY``).
    """
    rows = zip(*(_texts(records, i) for i in range(len(records.key_names))), keys, strict=True)
    while True:
        chunk = list(islice(rows, _CHUNK))
        if not chunk:
            return
        out = io.StringIO()
        csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(chunk)
        yield out.getvalue()
