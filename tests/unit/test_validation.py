"""Checks on caller-supplied values: keys, agents, content and metadata."""

from __future__ import annotations

import math

import pytest

from handoff.domain.validation import (
    check_storable_text,
    validate_agent,
    validate_content,
    validate_metadata,
    validate_session_key,
)
from handoff.errors import InvalidInput


def refused(call: object, *args: object, **kwargs: object) -> InvalidInput:
    assert callable(call)
    with pytest.raises(InvalidInput) as caught:
        call(*args, **kwargs)
    assert caught.value.code == "invalid_input"
    return caught.value


# -- session keys ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["s1", "proj-42", "team.alpha:run_7", "a@b+c", "0", "A" * 128])
def test_valid_session_keys_are_returned_unchanged(key: str) -> None:
    assert validate_session_key(key, max_length=128) == key


def test_empty_session_key_is_refused() -> None:
    error = refused(validate_session_key, "", max_length=128)
    assert error.message == "session_key must not be empty"
    assert error.details == {"field": "session_key"}


def test_too_long_session_key_is_refused_with_the_limit() -> None:
    error = refused(validate_session_key, "k" * 129, max_length=128)
    assert "129 characters" in error.message
    assert "128" in error.message
    assert error.details == {"field": "session_key", "limit": 128}


@pytest.mark.parametrize(
    ("key", "described"),
    [
        ("bad\nkey", "a control character (U+000A)"),
        ("bad\x00key", "a control character (U+0000)"),
        ("tab\tkey", "a control character (U+0009)"),
        ("del\x7fkey", "a control character (U+007F)"),
        ("a/b", "the character '/'"),
        ("has space", "the character ' '"),
        ("ключ", "the character 'к'"),
        ("-leading-dash", "the character '-'"),
        ("a?b", "the character '?'"),
    ],
)
def test_session_keys_with_unsafe_characters_are_refused_naming_the_character(key: str, described: str) -> None:
    error = refused(validate_session_key, key, max_length=128)
    assert described in error.message
    assert error.details == {"field": "session_key"}


def test_session_key_with_lone_surrogate_is_refused() -> None:
    error = refused(validate_session_key, "a\ud800", max_length=128)
    assert "U+D800" in error.message


# -- agents ----------------------------------------------------------------------------------


def test_agent_names_are_stripped_and_may_hold_spaces_and_unicode() -> None:
    assert validate_agent("  Claude Code  ", field="source_agent", max_length=128) == "Claude Code"
    assert validate_agent("エージェント/1", field="agent", max_length=128) == "エージェント/1"


@pytest.mark.parametrize("agent", ["", "   ", "\t"])
def test_blank_agent_is_refused_naming_the_field(agent: str) -> None:
    error = refused(validate_agent, agent, field="target_agent", max_length=128)
    assert error.message == "target_agent must not be empty"
    assert error.details == {"field": "target_agent"}


def test_too_long_agent_is_refused() -> None:
    error = refused(validate_agent, "a" * 129, field="source_agent", max_length=128)
    assert error.details == {"field": "source_agent", "limit": 128}


@pytest.mark.parametrize(
    ("agent", "code"), [("a\nb", "000A"), ("a\x00b", "0000"), ("a\x1bb", "001B"), ("a\x7f", "007F")]
)
def test_agent_with_control_characters_is_refused(agent: str, code: str) -> None:
    error = refused(validate_agent, agent, field="agent", max_length=128)
    assert f"U+{code}" in error.message


def test_agent_with_lone_surrogate_is_refused() -> None:
    error = refused(validate_agent, "bot\udfff", field="agent", max_length=128)
    assert "lone surrogate" in error.message
    assert error.details == {"field": "agent", "index": 3}


# -- content ---------------------------------------------------------------------------------


def test_content_is_returned_as_utf8_bytes() -> None:
    assert validate_content("héllo 世界 🙂", max_bytes=100) == "héllo 世界 🙂".encode()
    assert validate_content("", max_bytes=1) == b""


def test_content_with_lone_surrogate_is_refused_with_its_index() -> None:
    error = refused(validate_content, "ok \udc80 bad", max_bytes=100)
    assert "lone surrogate" in error.message
    assert "U+DC80" in error.message
    assert error.details == {"field": "content", "index": 3}


def test_content_with_nul_is_refused_with_its_index() -> None:
    error = refused(validate_content, "abc\x00def", max_bytes=100)
    assert "NUL" in error.message
    assert error.details == {"field": "content", "index": 3}


def test_content_limit_counts_utf8_bytes_not_characters() -> None:
    assert validate_content("é" * 5, max_bytes=10) == "é".encode() * 5
    error = refused(validate_content, "é" * 6, max_bytes=10)  # 6 characters, 12 bytes
    assert "12 bytes" in error.message
    assert error.details == {"field": "content", "size": 12, "limit": 10}


def test_content_exactly_at_the_limit_is_accepted() -> None:
    assert len(validate_content("x" * 1024, max_bytes=1024)) == 1024
    refused(validate_content, "x" * 1025, max_bytes=1024)


def test_storable_text_accepts_other_control_characters() -> None:
    check_storable_text("tab\tnewline\nbell\x07", field="content")


# -- metadata --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [(None, "null"), ([], "an array"), ("text", "a string"), (3, "a number"), (True, "a boolean"), (1.5, "a number")],
)
def test_metadata_that_is_not_an_object_is_refused(value: object, kind: str) -> None:
    error = refused(validate_metadata, value, max_bytes=1024)
    assert error.message == f"metadata must be a JSON object, not {kind}"
    assert error.details == {"field": "metadata"}


def test_metadata_error_names_the_field_it_checks() -> None:
    error = refused(validate_metadata, [1], field="request_data", max_bytes=1024)
    assert error.message.startswith("request_data must be a JSON object")


def test_valid_metadata_is_returned_as_is() -> None:
    meta = {"role": "user", "n": 1, "f": 0.5, "ok": True, "none": None, "list": [1, "two", {"three": 3}], "ключ": "值"}
    assert validate_metadata(meta, max_bytes=1024) is meta


def test_nested_nul_in_metadata_is_refused_with_its_path() -> None:
    error = refused(validate_metadata, {"a": {"b": ["ok", "bad\x00"]}}, max_bytes=1024)
    assert "NUL" in error.message
    assert error.details["field"] == "metadata.a.b[1]"


def test_nul_in_metadata_key_is_refused() -> None:
    error = refused(validate_metadata, {"outer": {"k\x00": 1}}, max_bytes=1024)
    assert error.details["field"] == "metadata.outer key"


def test_lone_surrogate_in_metadata_is_refused() -> None:
    error = refused(validate_metadata, {"x": ["\ud83d"]}, max_bytes=1024)
    assert "lone surrogate" in error.message
    assert error.details["field"] == "metadata.x[0]"


@pytest.mark.parametrize("bad", [math.nan, -math.nan])
def test_nan_in_metadata_is_refused(bad: float) -> None:
    error = refused(validate_metadata, {"score": {"value": bad}}, max_bytes=1024)
    assert "NaN" in error.message
    assert error.details["field"] == "metadata.score.value"


def test_infinity_in_metadata_is_refused() -> None:
    # JSON has no Infinity either; json.dumps would emit a non-standard token for it.
    refused(validate_metadata, {"x": math.inf}, max_bytes=1024)


def test_non_json_values_in_metadata_are_refused() -> None:
    error = refused(validate_metadata, {"when": object()}, max_bytes=1024)
    assert "not JSON" in error.message
    refused(validate_metadata, {"t": (1, 2)}, max_bytes=1024)
    refused(validate_metadata, {1: "non-string key"}, max_bytes=1024)


def test_too_big_metadata_is_refused_counting_utf8_bytes() -> None:
    ok = {"k": "é" * 10}  # {"k": "éééééééééé"} is 9 + 20 bytes
    assert validate_metadata(ok, max_bytes=29) is ok
    error = refused(validate_metadata, ok, max_bytes=28)
    assert error.details == {"field": "metadata", "size": 29, "limit": 28}
