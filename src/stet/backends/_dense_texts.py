"""Key texts in bulk, as UTF-8 bytes, and the tag `._dense.KeySet` files each by.

A big store's keys are kept as their texts, a chunk at a time: one `bytes`
of the chunk's texts one after the other, and the offsets where each
starts (`Texts`). Nothing per key is a Python object, so ten million keys
cost their text and four bytes each.

The tag of a text is a number in 1..`PRIME`: its UTF-8 bytes read as one
big-endian integer v, then ``v * MIX % PRIME + 1``. One call finds it in
Python with `tag` (``int.from_bytes``, a multiplication and a division by a
one-digit number); a whole chunk finds it in numpy with `Hasher`, from the
same bytes, without making a string per key: v mod PRIME is the sum of
each byte times 256**(L-1-i) mod PRIME, where i is the byte's place in its
text of L bytes. Writing that power as 256**(e-1) / 256**g (g the byte's
place in the chunk, e its text's end) makes it one running sum over the
chunk, read at the texts' starts and ends, then one multiplication per
text. The two must agree exactly, which ``tests/test_dense_index.py``
checks for arbitrary texts.

The tag only chooses where a key is filed and spares most comparisons: a
lookup compares the key's bytes with the text the table points to, so
however two texts' tags collide, no key is taken for another.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

from .._lazy import np, pa, pc

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "END",
    "MIX",
    "PRIME",
    "Hasher",
    "Texts",
    "encoded",
    "tag",
    "texts_of_arrow",
    "texts_of_strs",
]

#: The largest prime below 2**30: below one CPython digit, so ``%`` by it is
#: a one-digit division however long the text, and a tag fits 32 bits.
PRIME: Final = 1_073_741_789
#: Spreads texts that differ only in their last bytes (``int.from_bytes``
#: is small and regular for short texts) across the tags.
MIX: Final = 0x2C1B_3C6D
#: Each text is followed by this byte, which UTF-8 never holds: a text
#: found at a place is the whole text there when this byte follows it.
END: Final = 0xFF
# Below this many bytes in a chunk, a text's sum of bytes times powers
# (each under 2**38) cannot reach 2**64.
_EXACT_SUMS: Final = 1 << 26
# Bytes of texts `Hasher` takes at once (a text longer than this, alone).
_PIECE: Final = 1 << 18
# Joined texts up to this many bytes are made one chunk (Arrow's are small).
_COMBINE: Final = 1 << 30


def encoded(key: str) -> bytes:
    """The key's UTF-8 bytes (a lone surrogate kept as its three bytes)."""
    try:
        return key.encode()
    except UnicodeEncodeError:
        return key.encode("utf-8", "surrogatepass")


def tag(data: bytes) -> int:
    """The tag of a text of these bytes, in 1..PRIME (see the module's docstring)."""
    return int.from_bytes(data) * MIX % PRIME + 1


class Texts:
    """Texts one after the other in ``data``, each followed by `END`.

    Text i is ``data[offsets[i]:offsets[i + 1] - 1]``; ``offsets`` starts at 0.
    """

    __slots__ = ("data", "offsets")

    def __init__(self, data: bytes | memoryview, offsets: npt.NDArray[np.int64]) -> None:
        self.data = data
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __iter__(self) -> Iterator[bytes]:
        data, ends = self.data, self.offsets.tolist()
        return (bytes(data[a : b - 1]) for a, b in itertools.pairwise(ends))


def texts_of_strs(keys: list[str]) -> Iterator[Texts]:
    """These key texts, as one chunk."""
    if not keys:
        return
    parts = [encoded(k) for k in keys]
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, parts), dtype=np.int64, count=len(parts)), out=offsets[1:])
    offsets += np.arange(len(parts) + 1)  # the END after each
    yield Texts(b"\xff".join(parts) + b"\xff", offsets)


def texts_of_arrow(
    columns: Sequence[pa.Array[Any] | pa.ChunkedArray[Any]], sep: str
) -> Iterator[Texts]:
    """Each row's texts of these Arrow string columns (no nulls) joined by ``sep``,
    each followed by `END`: joined in C, a chunk (or the whole part) at a time."""
    # Joined as bytes (a string type cast to its binary twin costs nothing),
    # 64-bit offsets only where a column has them or is of another type.
    narrow = all(pa.types.is_string(c.type) for c in columns)
    kind = pa.binary() if narrow else pa.large_binary()
    parts: list[Any] = []
    for column in columns:
        if parts:
            parts.append(_scalar(sep.encode(), kind))
        if not narrow and not pa.types.is_large_string(column.type):
            column = column.cast(pa.large_string())  # a view type, a dictionary
        parts.append(column.cast(kind))
    parts.append(_scalar(bytes([END]), kind))
    joined = pc.binary_join_element_wise(*parts, _scalar(b"", kind))
    chunks = joined.chunks if isinstance(joined, pa.ChunkedArray) else [joined]
    if len(chunks) > 1 and joined.nbytes <= _COMBINE:
        # Arrow's own chunks (a CSV block each) are small: one Texts for all.
        chunks = [joined.combine_chunks()]
    width = np.int32 if narrow else np.int64
    for chunk in chunks:
        if not len(chunk):
            continue
        if chunk.null_count:
            raise ValueError("key texts cannot be null")
        _, ends, data = chunk.buffers()
        assert ends is not None
        assert data is not None  # each text has its END
        raw = np.frombuffer(memoryview(ends), dtype=width)
        offsets = raw[chunk.offset : chunk.offset + len(chunk) + 1].astype(np.int64)
        base = int(offsets[0])
        yield Texts(memoryview(data)[base : int(offsets[-1])], offsets - base)


def _scalar(data: bytes, kind: pa.DataType) -> pa.Scalar[Any]:
    """``data`` as an Arrow scalar of this binary type (`pa.scalar` imports pandas)."""
    width = np.int32 if kind == pa.binary() else np.int64
    ends = pa.py_buffer(np.array([0, len(data)], dtype=width).tobytes())
    return pa.Array.from_buffers(kind, 1, [None, ends, pa.py_buffer(data)])[0]


def _powers(base: int, count: int) -> npt.NDArray[np.uint64]:
    """``base**i % PRIME`` for i in 0..count-1, by doubling."""
    out = np.empty(max(count, 1), dtype=np.uint64)
    out[0] = 1
    filled = 1
    while filled < count:
        step = min(filled, count - filled)
        np.multiply(out[:step], pow(base, filled, PRIME), out=out[filled : filled + step])
        out[filled : filled + step] %= PRIME  # products stay under 2**60
        filled += step
    return out


class Hasher:
    """The tags of whole chunks of texts, in numpy (powers kept between chunks)."""

    def __init__(self) -> None:
        self._up: npt.NDArray[np.uint64] = _powers(256, 1)
        self._down: npt.NDArray[np.uint64] = _powers(1, 1)

    def _ensure(self, count: int) -> None:
        if len(self._up) >= count + 1:
            return
        count = max(count + 1, 2 * len(self._up))
        self._up = _powers(pow(256, -1, PRIME), count)
        down = _powers(256, count)
        down *= MIX
        down %= PRIME
        self._down = down

    def tags(self, texts: Texts) -> npt.NDArray[np.uint32]:
        """`tag` of each text, as uint32."""
        data = np.frombuffer(texts.data, dtype=np.uint8)
        offsets = texts.offsets
        count = len(offsets) - 1
        if len(data) <= _PIECE:
            return self._tags(data, offsets)
        # A piece of texts at a time: the powers and sums of a piece stay in
        # the processor's cache, and the powers kept are a piece long.
        out = np.empty(count, dtype=np.uint32)
        first = 0
        while first < count:
            start = int(offsets[first])
            last = int(np.searchsorted(offsets, start + _PIECE, side="right")) - 1
            last = max(first + 1, min(last, count))
            end = int(offsets[last])
            out[first:last] = self._tags(data[start:end], offsets[first : last + 1] - start)
            first = last
        return out

    def _tags(
        self, data: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.uint32]:
        total = len(data)
        self._ensure(total)
        running = np.zeros(total + 1, dtype=np.uint64)
        place = running[1:]
        # Byte g of the chunk times 256**-g; a text ending (before its END)
        # at e then sums to its value times 256**-(e-1).
        np.multiply(data, self._up[:total], out=place, dtype=np.uint64)
        if total >= _EXACT_SUMS:
            place %= PRIME
        # Wraps past 2**64; each text's difference of two sums stays exact.
        np.cumsum(place, out=place)
        ends = offsets[1:] - 1
        sums = running[ends] - running[offsets[:-1]]
        del running, place
        sums %= PRIME
        sums *= self._down[ends - 1]  # an empty text's sum is 0 whatever this is
        sums %= PRIME
        sums += 1
        return sums.astype(np.uint32)
