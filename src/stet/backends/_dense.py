"""A set of packed keys that holds a big store's keys in their text and 13 bytes.

A Python set of a million key strings costs about 100 bytes a key; a store
of ten million would take a gigabyte only to answer "is this key done?".
`KeySet` keeps the keys read in bulk (a store opened, a big change read) as
their UTF-8 texts, each followed by a byte UTF-8 never holds, in `bytes`
of a few megabytes ("packs"), filed in a table of machine integers laid
out for linear probing: per key a 32-bit tag of its text and the 32-bit
place of the text (10 bits of pack, 22 of offset), about 11.4 bytes at the
table's load.
The keys added one at a time (this process's records, a small change read)
go to an ordinary set beside it, until they are many enough to fold in.

The answer is exact: a lookup computes the key's tag, and for each slot of
that tag compares the key's bytes with the text the slot points to. Tags
that collide cost one more comparison, never a wrong answer.

Keys that are tuples (texts holding the unit separator, see `._index.pack`)
are always held exactly, in the set.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Final

from .._lazy import np
from ._dense_texts import END, MIX, PRIME, Hasher, Texts, encoded, texts_of_strs

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["KeySet"]

Packed = str | tuple[str, ...]

#: Table slots per key held (linear probing stays short below 0.75).
LOAD: Final = 0.7
#: Groups of more keys than this are held in the table: keys read in bulk
#: go to it, and keys added one at a time are folded into it past this
#: many (and past a quarter of the table), so a long sweep's records do not
#: pile up in the set at a hundred bytes each. Below it, the set's lookup is
#: the faster skip (by a few tenths of a µs), for about 100 MB a million keys.
FOLD_AT: Final = 1 << 20
# Bound once: looking the method up on `int` at each call costs more than the call.
_from_bytes: Final = int.from_bytes
#: Keys read at once when a big read is taken in (bounds what is alive).
CHUNK: Final = 1 << 18
#: A place in the table: the pack's number above these bits, the text's
#: offset in the pack below (a pack is closed once it reaches 2**22 bytes).
OFFSET_BITS: Final = 22
#: Packs a table can point to; texts past them stay in the set.
MAX_PACKS: Final = 1 << (32 - OFFSET_BITS)


class KeySet:
    """The packed keys of one (function, key columns) group.

    Answers ``key in keys`` exactly, for keys added with `add`/`update` and
    for keys taken in bulk with `absorb` alike. Iterating gives only the
    keys added one at a time: whoever needs every text reads the store.
    """

    __slots__ = ("_packs", "_probe", "_size", "recent")

    def __init__(self, keys: Iterable[Packed] = ()) -> None:
        #: The keys held in the set.
        self.recent: set[Packed] = set(keys)
        self._size = 0  # keys in the table
        # The texts the table points to (only ever appended to).
        self._packs: list[bytes] = []
        # (table, home slots, packs): per slot a tag (0: empty) and a place,
        # side by side. One attribute, so a reader in another thread sees a
        # table with its size and the packs it points to.
        self._probe: tuple[memoryview, int, list[bytes]] | None = None

    def __contains__(self, key: object) -> bool:
        if key in self.recent:
            return True
        probe = self._probe
        if probe is None or type(key) is not str:
            return False
        table, home, packs = probe
        try:
            data = key.encode()
        except UnicodeEncodeError:
            data = key.encode("utf-8", "surrogatepass")
        tag = _from_bytes(data) * MIX % PRIME + 1
        slot = 2 * (tag % home)
        while True:
            found = table[slot]
            if found == tag:
                place = table[slot + 1]
                text = packs[place >> 22]  # OFFSET_BITS, inlined
                place &= 0x3FFFFF
                # The key's bytes there, then the END only a text's end holds.
                if text.startswith(data, place) and text[place + len(data)] == 0xFF:
                    return True
            elif not found:
                return False
            slot += 2

    def __len__(self) -> int:
        """The keys held (a key taken in bulk twice counts twice)."""
        return len(self.recent) + self._size

    def __iter__(self) -> Iterator[Packed]:
        """The keys held in the set (not those of the table: see `dense`)."""
        return iter(self.recent)

    def __eq__(self, other: object) -> bool:
        """The same keys, however they are held."""
        if not isinstance(other, KeySet):
            return NotImplemented
        return self._canonical() == other._canonical()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"KeySet({len(self.recent)} in a set, {self._size} in the table)"

    @property
    def dense(self) -> bool:
        """True if some keys are held in the table."""
        return self._size > 0

    @property
    def nbytes(self) -> int:
        """Bytes of the table and the texts it points to."""
        probe = self._probe
        table = probe[0].nbytes if probe is not None else 0
        return table + sum(map(len, self._packs))

    def add(self, key: Packed) -> None:
        self.recent.add(key)
        if len(self.recent) > FOLD_AT:
            self._fold()

    def update(self, keys: Iterable[Packed]) -> None:
        self.recent.update(keys)
        if len(self.recent) > FOLD_AT:
            self._fold()

    def absorb(self, chunks: Iterable[Texts]) -> None:
        """Hold these texts (key strings' UTF-8 bytes) in the table."""
        hasher = Hasher()
        tags: list[npt.NDArray[np.uint32]] = []
        places: list[npt.NDArray[np.uint32]] = []
        packs = list(self._packs)
        pieces: list[bytes | memoryview] = []  # of the pack being filled
        size = 0  # its bytes
        limit = 1 << OFFSET_BITS
        for texts in chunks:
            if not len(texts):
                continue
            offsets = texts.offsets
            tags.append(hasher.tags(texts))
            first = 0
            while first < len(texts):
                if size >= limit:
                    packs.append(b"".join(pieces))
                    pieces, size = [], 0
                if len(packs) >= MAX_PACKS:
                    self._keep_exact(texts, first)
                    tags[-1] = tags[-1][:first]
                    break
                # Every text of a pack starts below the limit.
                last = int(np.searchsorted(offsets, offsets[first] + limit - size))
                last = max(first + 1, min(last, len(texts)))
                base = int(offsets[first])
                pieces.append(texts.data[base : int(offsets[last])])
                places.append(
                    ((len(packs) << OFFSET_BITS) + size + offsets[first:last] - base).astype(
                        np.uint32
                    )
                )
                size += int(offsets[last]) - base
                first = last
        if pieces:
            packs.append(b"".join(pieces))
        del pieces
        if not places:
            return
        if self._probe is not None:
            old_tags, old_places = self._entries()
            tags.insert(0, old_tags)
            places.insert(0, old_places)
        all_tags = np.concatenate(tags)
        del tags[:]
        all_places = np.concatenate(places)
        del places[:]
        self._packs = packs
        self._build(all_tags, all_places)

    def _keep_exact(self, texts: Texts, first: int) -> None:
        """Texts past what the table can point to: to the set (a store of over 4 GB of keys)."""
        for data in list(texts)[first:]:
            self.recent.add(data.decode("utf-8", "surrogatepass"))

    def _fold(self) -> None:
        if len(self.recent) <= max(FOLD_AT, self._size // 4):
            return
        texts = [k for k in self.recent if type(k) is str]
        kept = {k for k in self.recent if type(k) is not str}
        self.absorb(texts_of_strs(texts))
        self.recent = kept

    def _entries(self) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]]:
        assert self._probe is not None
        pairs = np.frombuffer(self._probe[0], dtype=np.uint32).reshape(-1, 2)
        used = pairs[:, 0] != 0
        return pairs[used, 0], pairs[used, 1]

    def _build(self, tags: npt.NDArray[np.uint32], places: npt.NDArray[np.uint32]) -> None:
        size = len(tags)
        home = _prime_from(int(size / LOAD))
        # Each entry as one 64-bit number that sorts by home slot: the slot
        # (tag % home), the rest of its tag (tag // home: the two give the
        # tag back, in 31 bits together) and its place. One sort then lays
        # the entries out in order, read and written front to back: no
        # argsort and no gather at random (a third of the layout, measured).
        high = (PRIME // home).bit_length()
        assert (home - 1).bit_length() + high + 32 <= 64
        keyed = (tags % np.uint32(home)).astype(np.uint64)
        keyed <<= high
        keyed |= tags // np.uint32(home)
        del tags
        keyed <<= 32
        keyed |= places
        del places
        keyed.sort()
        entries = keyed & np.uint64(0xFFFFFFFF)  # the places, sorted
        keyed >>= 32
        rest = keyed & np.uint64((1 << high) - 1)
        keyed >>= high
        slots = keyed.view(np.int64)
        rest *= np.uint64(home)
        rest += keyed  # the tags
        # A slot's tag and place as one 64-bit number whose first 32 bits in
        # memory are the tag.
        if sys.byteorder == "little":
            entries <<= 32
            entries |= rest
        else:
            rest <<= 32
            entries |= rest
        del rest
        # Linear probing laid out at once: sorted by home slot, each key
        # takes the first free slot from its home on, which is its home or
        # the slot after the previous key's. The table runs past its home
        # slots instead of wrapping, and ends with an empty slot.
        steps = np.arange(size, dtype=np.int64)
        slots -= steps
        where = np.maximum.accumulate(slots, out=slots)
        where += steps
        del steps
        width = max(int(where[-1]) + 2, home + 1)
        table = np.zeros(width, dtype=np.uint64)
        table[where] = entries
        del entries, where, keyed
        self._probe = (table.view(np.uint32).data, home, self._packs)
        self._size = size

    def _canonical(self) -> tuple[frozenset[Packed], frozenset[bytes]]:
        exact = frozenset(k for k in self.recent if type(k) is not str)
        texts = {encoded(k) for k in self.recent if type(k) is str}
        for pack in self._packs:
            texts.update(pack.split(bytes([END]))[:-1])
        return exact, frozenset(texts)


def _prime_from(start: int) -> int:
    """The least prime at least ``start`` (and 2).

    Tags are sums of byte values times fixed weights, so keys that differ
    in a regular way (seeds counting up) have tags in arithmetic steps; a
    composite number of home slots folds such steps onto the same slots
    (measured: 2.9 slots from home on average at the table's load, where a
    prime gives 1.1, as random slots would).
    """
    candidate = max(start, 2)
    while True:
        if candidate % 2 or candidate == 2:
            root = int(candidate**0.5)
            if all(candidate % d for d in range(3, root + 1, 2)):
                return candidate
        candidate += 1


def trim_heap() -> None:
    """Give the C heap's free pages back to the system, after a big build.

    Building a table leaves the C heap holding the small arrays it freed
    between the packs it kept (about 13 bytes a key at 10**7, measured);
    glibc's ``malloc_trim`` returns them. Elsewhere (no glibc) nothing is done.
    """
    try:
        import ctypes

        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):
        return
    trim(0)
