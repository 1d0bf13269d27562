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
from itertools import starmap
from operator import itemgetter
from typing import Final

from ._new_records import NewRecords

__all__ = ["copy_chunks", "key_jsons"]

#: Rows formatted per chunk sent to the server (bounds the memory of the text).
_CHUNK: Final = 100_000
# What json.dumps(..., ensure_ascii=False) quotes a string with (C when available).
_quote = json.encoder.encode_basestring


def key_jsons(names: Sequence[str], keys: Sequence[tuple[str, ...]]) -> list[str]:
    """Each key's ``_stet_key``: `key_json` of its texts under the columns ``names``."""
    order = sorted(range(len(names)), key=names.__getitem__)
    if not order:  # a function of no key parameters
        return ["{}"] * len(keys)
    # '{"a":%s,"b":%s}' with format()'s braces doubled in the names' JSON.
    template = (
        "{{"
        + ",".join(_quote(names[i]).replace("{", "{{").replace("}", "}}") + ":{}" for i in order)
        + "}}"
    )
    columns = [list(map(_quote, map(itemgetter(i), keys))) for i in order]
    return list(starmap(template.format, zip(*columns, strict=True)))


def copy_chunks(records: NewRecords) -> Iterator[str]:
    """CSV of each record's key texts (as `NewRecords.key_names`) and its ``_stet_key``.

    Every field is quoted, so an empty text stays an empty text (an
    unquoted empty field is NULL to ``COPY``). Made a chunk at a time, so
    the texts of a million records are never all held at once.
    """
    for start in range(0, len(records.keys), _CHUNK):
        keys = records.keys[start : start + _CHUNK]
        rows = map(tuple.__add__, keys, map(_single, key_jsons(records.key_names, keys)))
        out = io.StringIO()
        csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
        yield out.getvalue()


def _single(text: str) -> tuple[str]:
    return (text,)
