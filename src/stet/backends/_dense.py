"""A set of packed keys that holds a big store's keys in 16 bytes each, or about.

A Python set of a million key strings costs about 100 bytes a key; a store
of ten million would take a gigabyte only to answer "is this key done?".
`KeySet` keeps the keys read in bulk (a store opened, a big change read) as
two 64-bit digests each, in a table of two machine-integer arrays laid out
for linear probing, and the keys added one at a time (this process's
records, a small change read) in an ordinary set beside it, until they are
many enough to fold into the table.

The digests are Python's own string hash of the key and of the key with
`SALT` appended: SipHash-1-3 under a 128-bit secret drawn for each
process, which is what Python's dicts rely on. Two different keys agree on
both with probability 2**-128, so a sweep of N calls against a store of M
keys skips a run that never happened with probability below N * M * 2**-128
(under 3e-25 for ten million each); docs/explanation/guarantees.md has the
argument. The digests live only in this process's memory, so the per-process
secret costs nothing: the table is built anew whenever a store is opened.

Keys that are tuples (texts holding the unit separator, see `._index.pack`)
are always held exactly, in the set.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Final

from .._lazy import np

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["SALT", "KeySet", "digests"]

Packed = str | tuple[str, ...]

#: Appended to a key for its second digest. Any fixed text would do: it only
#: makes the second hash's input differ from the first's.
SALT: Final = "\x00stet"
#: Table slots per key held (linear probing stays short below 0.75).
LOAD: Final = 0.7
#: Groups of more keys than this are held by digests: keys read in bulk
#: go to the table, and keys added one at a time are folded into it past
#: this many (and past a quarter of the table), so a long sweep's records do
#: not pile up in the set at a hundred bytes each. Below it, the set's exact
#: lookup is the faster skip (by about 0.3-0.5 µs), for about 100 MB a
#: million keys.
FOLD_AT: Final = 1 << 20
#: Keys hashed at once when a big read is digested (bounds the Python
#: strings alive at any time).
CHUNK: Final = 1 << 16


class KeySet:
    """The packed keys of one (function, key columns) group.

    Answers ``key in keys`` exactly for keys added with `add`/`update` and,
    for keys taken in bulk with `absorb`, by their 128-bit digest (see the
    module's docstring). It cannot list the bulk keys' texts: whoever needs
    them reads the store.
    """

    __slots__ = ("_home", "_size", "_table", "recent")

    def __init__(self, keys: Iterable[Packed] = ()) -> None:
        #: The keys held exactly.
        self.recent: set[Packed] = set(keys)
        self._home = 0  # home slots of the table; 0: no table
        self._size = 0  # keys in the table
        # Per slot, its key's two digests side by side (one cache line): the
        # first is 0 where the slot is empty.
        self._table: memoryview | None = None

    def __contains__(self, key: object) -> bool:
        if key in self.recent:
            return True
        table = self._table
        if table is None or not isinstance(key, str):
            return False
        tag = hash(key) or 1
        slot = 2 * (tag % self._home)
        check = None
        while True:
            found = table[slot]
            if found == tag:
                if check is None:
                    check = hash(key + SALT)
                if table[slot + 1] == check:
                    return True
            elif not found:
                return False
            slot += 2

    def __len__(self) -> int:
        """The keys held (a key taken in bulk twice counts twice)."""
        return len(self.recent) + self._size

    def __iter__(self) -> Iterator[Packed]:
        """The keys held exactly (not those of the table: see `dense`)."""
        return iter(self.recent)

    def __eq__(self, other: object) -> bool:
        """The same keys, however they are held."""
        if not isinstance(other, KeySet):
            return NotImplemented
        mine, theirs = self._canonical(), other._canonical()
        return mine[0] == theirs[0] and bool(np.array_equal(mine[1], theirs[1]))

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"KeySet({len(self.recent)} exact, {self._size} by digest)"

    @property
    def dense(self) -> bool:
        """True if some keys are held only by their digests."""
        return self._size > 0

    def add(self, key: Packed) -> None:
        self.recent.add(key)
        if len(self.recent) > FOLD_AT:
            self._fold()

    def update(self, keys: Iterable[Packed]) -> None:
        self.recent.update(keys)
        if len(self.recent) > FOLD_AT:
            self._fold()

    def absorb(self, tags: npt.NDArray[np.int64], checks: npt.NDArray[np.int64]) -> None:
        """Hold the keys of these digests (from `digests`) in the table."""
        if self._table is not None:
            old_tags, old_checks = self._entries()
            tags = np.concatenate([old_tags, tags])
            checks = np.concatenate([old_checks, checks])
        self._build(tags, checks)

    def _fold(self) -> None:
        if len(self.recent) <= max(FOLD_AT, self._size // 4):
            return
        texts = [k for k in self.recent if type(k) is str]
        kept = {k for k in self.recent if type(k) is not str}
        self.absorb(*digests(texts, len(texts)))
        self.recent = kept

    def _entries(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        pairs = np.frombuffer(self._table, dtype=np.int64).reshape(-1, 2)  # type: ignore[arg-type]
        used = pairs[:, 0] != 0
        return pairs[used, 0], pairs[used, 1]

    def _build(self, tags: npt.NDArray[np.int64], checks: npt.NDArray[np.int64]) -> None:
        size = len(tags)
        if not size:
            self._home, self._size, self._table = 0, 0, None
            return
        home = max(1, int(size / LOAD))
        slots = tags % home  # non-negative, as in Python
        order = _order_of(slots, home)
        slots = slots[order]
        # Linear probing laid out at once: sorted by home slot, each key
        # takes the first free slot from its home on, which is its home or
        # the slot after the previous key's. The table runs past its home
        # slots instead of wrapping, and ends with an empty slot.
        steps = np.arange(size, dtype=np.int64)
        where = np.maximum.accumulate(slots - steps) + steps
        del slots, steps
        width = max(int(where[-1]) + 2, home + 1)
        table = np.zeros((width, 2), dtype=np.int64)
        table[where, 0] = tags[order]
        del tags
        table[where, 1] = checks[order]
        self._table = table.reshape(-1).data
        self._home = home
        self._size = size

    def _canonical(self) -> tuple[frozenset[Packed], npt.NDArray[np.int64]]:
        exact = frozenset(k for k in self.recent if type(k) is not str)
        texts = [k for k in self.recent if type(k) is str]
        tags, checks = digests(texts, len(texts))
        if self._table is not None:
            old_tags, old_checks = self._entries()
            tags = np.concatenate([old_tags, tags])
            checks = np.concatenate([old_checks, checks])
        pairs = np.unique(np.stack([tags, checks], axis=1), axis=0)
        return exact, pairs


def _order_of(slots: npt.NDArray[np.int64], home: int) -> npt.NDArray[np.intp]:
    """The permutation that sorts ``slots`` (each below ``home``).

    Two stable passes over 12 and 16 bits (numpy sorts 16-bit keys by radix,
    in linear time) instead of a comparison sort: a third faster at 10**7.
    """
    if home >= 1 << 28:
        return np.argsort(slots)
    low = np.argsort((slots & 0xFFF).astype(np.uint16), kind="stable")
    high = (slots[low] >> 12).astype(np.uint16)
    return low[np.argsort(high, kind="stable")]


def digests(
    texts: Iterable[str], count: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The two digests `KeySet` holds for each of ``count`` key strings.

    ``texts`` is read twice if it is a list; pass a list (or call per chunk).
    """
    items = texts if isinstance(texts, list) else list(texts)
    tags = np.fromiter(map(hash, items), dtype=np.int64, count=count)
    tags[tags == 0] = 1  # 0 marks an empty slot
    salted = map(operator.add, items, itertools.repeat(SALT))
    checks = np.fromiter(map(hash, salted), dtype=np.int64, count=count)
    return tags, checks
