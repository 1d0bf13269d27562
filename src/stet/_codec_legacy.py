"""Key texts of earlier releases, turned into today's canonical texts.

stet 0.0.x (and stores written by hand) held ``str(value)``; key rules
version 1 (stet 0.1) wrote formula-like and control-character strings bare.
Stores read such records through these functions, so that an old store
keeps working (read, skip, append) after an upgrade.
"""

from __future__ import annotations

import re
from typing import Final

from ._codec_text import INT_RE, float_text, int_text, needs_tag_v1, str_text

__all__ = ["V1_CHANGED", "canonical_from_legacy", "canonical_from_v1"]

_LEGACY_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")


def canonical_from_legacy(text: str) -> str:
    """Canonical text for a cell written by stet 0.0.x or by hand.

    Those stores hold ``str(value)``, which cannot tell ``"1"`` from ``1``:
    a cell shaped like a number (``3``, ``0.1``, ``1e-05``, ``nan``) is read
    as that number, ``True``/``False``/``None`` as themselves, and everything
    else (including ``007``) as a string.
    """
    if text in ("None", "True", "False"):
        return text
    if INT_RE.match(text):
        return int_text(int(text))
    if _LEGACY_NUMBER.match(text) or text in ("nan", "inf", "-inf"):
        return float_text(float(text))
    return str_text(text)


#: Version 1 texts that may differ from today's: a bare string that begins
#: like a formula, or any text with a control character. Numbers (``-1``,
#: ``-inf``) match too; they come out unchanged. (RE2 syntax, for Arrow.)
V1_CHANGED: Final = (
    r"^[=@]|^[+-]$|^[+-][^0-9i]|^[+-]i$|^[+-]i[^n]|^[+-]in$|^[+-]in[^f]|^[+-]inf."
    r"|[\x00-\x08\x0a-\x1f]"
)


def canonical_from_v1(text: str) -> str:
    """Today's canonical text for a text written under key rules version 1.

    Version 1 wrote strings beginning with ``=``, ``+``, ``-`` or ``@`` bare
    and strings with control characters raw; everything else is unchanged.
    """
    if (not text or text[0] not in "'=+-@") and text.isprintable():
        return text
    if text[0] == "'":
        return str_text(text[1:])
    if needs_tag_v1(text):
        return text  # not a string under version 1 (a number, a container...)
    return str_text(text)
