"""Writing records exactly as given, as an older stet (or a hand) wrote them.

No user operation does this: `Store.merge` writes today's texts. Tests of
reading older stores need it, so it lives here, in one place, and reaches
into the built-in stores' formats.
"""

from __future__ import annotations

from collections.abc import Sequence

import stet
from stet.backends._file_store import FileStore
from stet.backends._postgres import PostgresStore


def append_as_written(store: str, records: Sequence[dict[str, str]]) -> None:
    """Append ``records`` to ``store`` unchanged (metadata and texts as given)."""
    opened = stet.backends.open_store(store)
    opened.refresh()
    if isinstance(opened, PostgresStore):
        opened._rows.insert(list(records))
    else:
        assert isinstance(opened, FileStore)
        with opened._locked():
            opened.refresh()
            reader = opened._reader
            reader.cursor = opened._format.append(list(records), reader.cursor)
    opened.flush()
