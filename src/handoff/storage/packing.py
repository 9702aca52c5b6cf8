"""Compact storage for archived history: entry content zlib-compressed, transparently unpacked on read."""

from __future__ import annotations

import zlib

PLAIN = "plain"
ZLIB = "zlib"


def pack_content(content: str) -> bytes:
    return zlib.compress(content.encode("utf-8"), level=6)


def unpack_content(content: str, codec: str, packed: bytes | None) -> str:
    if codec == PLAIN:
        return content
    if codec == ZLIB and packed is not None:
        return zlib.decompress(packed).decode("utf-8")
    raise ValueError(f"entry content stored with unknown codec {codec!r}")


def unpack_head(codec: str, packed: bytes, chars: int) -> str:
    """The first `chars` characters (or fewer) of packed content, unpacking no more than they need."""
    if codec != ZLIB:
        raise ValueError(f"entry content stored with unknown codec {codec!r}")
    head = zlib.decompressobj().decompress(packed, 4 * chars)  # UTF-8: at most 4 bytes a character
    return head.decode("utf-8", errors="ignore")[:chars]
