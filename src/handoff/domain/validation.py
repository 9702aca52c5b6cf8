"""Checks on caller-supplied values, shared by every entry point.

Everything stored must round-trip byte-identically on every backend, so text that one of them
cannot store (lone surrogates, NUL) is refused here, for all of them alike.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from enum import StrEnum
from typing import Any, TypeVar

from handoff.errors import InvalidInput

# Keys appear in URIs (handoff://sessions/{key}), so no '/', no whitespace, no control characters.
_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]*")
_AGENT_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")


def validate_session_key(key: str, *, max_length: int) -> str:
    if not key:
        raise InvalidInput("session_key must not be empty", {"field": "session_key"})
    if len(key) > max_length:
        raise InvalidInput(
            f"session_key is {len(key)} characters long; the limit is {max_length}",
            {"field": "session_key", "limit": max_length},
        )
    if not _KEY_RE.fullmatch(key):
        bad = next((c for c in key if not _KEY_RE.fullmatch("a" + c)), key[0])
        raise InvalidInput(
            f"session_key contains {_describe_char(bad)}; use letters, digits and . _ : @ + - "
            "(starting with a letter or digit)",
            {"field": "session_key"},
        )
    return key


def validate_agent(agent: str, *, field: str, max_length: int) -> str:
    """An agent name as one canonical string: NFKC (a fullwidth `alice` is `alice`), nothing invisible
    or direction-changing, and letters of one script (`alice` spelled with a Cyrillic `a` is refused)."""
    name = unicodedata.normalize("NFKC", agent).strip()
    if not name:
        raise InvalidInput(f"{field} must not be empty", {"field": field})
    if len(name) > max_length:
        raise InvalidInput(
            f"{field} is {len(name)} characters long; the limit is {max_length}",
            {"field": field, "limit": max_length},
        )
    if match := _AGENT_FORBIDDEN.search(name):
        raise InvalidInput(f"{field} contains {_describe_char(match.group())}", {"field": field})
    check_storable_text(name, field=field)
    for char in name:
        if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
            raise InvalidInput(
                f"{field} contains an invisible or direction-changing character (U+{ord(char):04X})",
                {"field": field},
            )
    scripts = sorted({_script(char) for char in name if char.isalpha()})
    if len(scripts) > 1:
        raise InvalidInput(
            f"{field} mixes letters of different scripts ({', '.join(scripts)}); use one script",
            {"field": field},
        )
    return name


# Format (bidi overrides, zero-width joiners), private-use, unassigned, line and paragraph separators.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Co", "Cn", "Zl", "Zp"})
# Scripts written together in one name: Japanese mixes kanji and kana, Korean hangul and hanja.
_SCRIPT_FAMILIES = {"CJK": "Han", "HIRAGANA": "Han", "KATAKANA": "Han", "HANGUL": "Han", "KANGXI": "Han"}


def _script(char: str) -> str:
    """The script of a letter, from the first word of its Unicode name (LATIN, CYRILLIC, GREEK …)."""
    first = unicodedata.name(char, "UNKNOWN").split(" ", 1)[0].split("-", 1)[0]  # KATAKANA-HIRAGANA → KATAKANA
    return _SCRIPT_FAMILIES.get(first, first.title())


def check_storable_text(text: str, *, field: str) -> None:
    """Refuse text that is not valid Unicode scalar values or that holds NUL."""
    nul = text.find("\x00")
    if nul != -1:
        raise InvalidInput(
            f"{field} contains a NUL character (U+0000) at index {nul}; NUL cannot be stored",
            {"field": field, "index": nul},
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"{field} contains a lone surrogate ({_describe_char(text[exc.start])}) at index {exc.start}; "
            "send valid UTF-8 text",
            {"field": field, "index": exc.start},
        ) from None


def validate_content(content: str, *, max_bytes: int) -> bytes:
    """Return the UTF-8 encoding of `content` after checking it can be stored."""
    check_storable_text(content, field="content")
    encoded = content.encode("utf-8")
    if len(encoded) > max_bytes:
        raise InvalidInput(
            f"content is {len(encoded)} bytes; the limit is {max_bytes} bytes",
            {"field": "content", "size": len(encoded), "limit": max_bytes},
        )
    return encoded


def validate_metadata(metadata: Any, *, field: str = "metadata", max_bytes: int) -> dict[str, Any]:
    if not isinstance(metadata, dict):
        raise InvalidInput(f"{field} must be a JSON object, not {json_kind(metadata)}", {"field": field})
    _check_json_value(metadata, field)
    size = len(json.dumps(metadata, ensure_ascii=False).encode("utf-8"))
    if size > max_bytes:
        raise InvalidInput(
            f"{field} is {size} bytes as JSON; the limit is {max_bytes} bytes",
            {"field": field, "size": size, "limit": max_bytes},
        )
    return metadata


def _check_json_value(value: Any, path: str) -> None:
    if isinstance(value, str):
        check_storable_text(value, field=path)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"{path} has a non-string key", {"field": path})
            check_storable_text(key, field=f"{path} key")
            _check_json_value(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_value(item, f"{path}[{index}]")
    elif isinstance(value, float) and not math.isfinite(value):
        kind = "NaN" if math.isnan(value) else "infinite"
        raise InvalidInput(f"{path} is {kind}, which JSON cannot represent", {"field": path})
    elif value is not None and not isinstance(value, bool | int | float):
        raise InvalidInput(f"{path} holds a {type(value).__name__}, which is not JSON", {"field": path})


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _describe_char(char: str) -> str:
    code = ord(char)
    if code < 0x20 or code == 0x7F:
        return f"a control character (U+{code:04X})"
    if 0xD800 <= code <= 0xDFFF:
        return f"U+{code:04X}"
    return f"the character {char!r}"


E = TypeVar("E", bound=StrEnum)


def parse_choice(enum: type[E], value: str, *, field: str) -> E:
    """One of an enum's values, or `invalid_input` naming the field and every allowed value."""
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise InvalidInput(f"{field} must be one of {allowed}; got {value!r}", {"field": field}) from None
