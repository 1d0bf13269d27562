"""Runs recorded under key rules 2 or older, found by the key text those rules gave.

Up to key rules 2, a class value that ``exclude=`` reaches into was keyed as
a plain mapping of its kept fields, without its class: ``Adam(lr=0.1, x=1)``
and ``Sgd(lr=0.1, x=2)`` with ``exclude=["opt.x"]`` were one key, so the
second run was skipped without ever running. Rules 3 key it as the class
less those fields (``Adam(lr=0.1)``). A store written before the upgrade
holds the old text of runs that did finish, and those must still be
skipped; but only by records written under the old rules, never by a rules
3 record of a mapping with the same items (that was the bug).

So a function with such a column asks, when its key is not found, whether
an old record holds the old text (`OldRecords.holds`); every other function
never gets here.
"""

from __future__ import annotations

from ._old_texts import OLD_VERSIONS
from .backends import pack
from .backends._schema import CODEC, identity
from .typing import Store

__all__ = ["OLD_VERSIONS", "OldRecords"]


class OldRecords:
    """The key texts of one function's records written under key rules 2 or older.

    Read from the store once per process, when a record holding a call's
    old text is first seen, and again whenever one is seen that the texts
    read do not hold (another writer's, since). Whether a record holds the
    text at all is asked of the store every time, so a removed one is gone.
    """

    __slots__ = ("_store", "_texts", "cols", "function")

    def __init__(self, function: str, cols: tuple[str, ...]) -> None:
        self.function = function
        self.cols = cols
        self._store: Store | None = None
        self._texts: frozenset[tuple[str, ...]] = frozenset()

    def holds(self, store: Store, old: tuple[str, ...], *, fresh: bool) -> bool:
        """True if a record of key rules 2 or older holds these key texts.

        Args:
            store: The function's store.
            old: The call's key texts under key rules 2.
            fresh: The store was refreshed just now, so whether any record
                holds the texts is a lookup in its index (else a `Store.matches`).
        """
        # Asked first, even when the texts read hold it: the record may have
        # been removed since (forget, reset), and then the run is not done.
        if fresh:
            anywhere = store.knows(self.function, self.cols, pack(old))
        else:
            anywhere = store.matches(self.function, self.cols, old)
        if not anywhere:
            return False
        if self._store is store and old in self._texts:
            return True
        self._texts = frozenset(self._read(store))
        self._store = store
        return old in self._texts

    def _read(self, store: Store) -> set[tuple[str, ...]]:
        texts: set[tuple[str, ...]] = set()
        for record in store.records():
            if record.get(CODEC) not in OLD_VERSIONS:
                continue
            function, cols, values = identity(record, store.location)
            if function in (self.function, "") and cols == self.cols:
                texts.add(values)
        return texts
