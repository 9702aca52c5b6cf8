"""What the tool schemas tell an agent about limits is what the server enforces."""

from __future__ import annotations

import re

from handoff.config import LimitSettings
from tests.docs.conftest import Listing


def test_session_key_limit_in_descriptions_and_schemas_is_the_enforced_one(listing: Listing) -> None:
    limit = LimitSettings().max_key_length
    problems: list[str] = []
    stating = 0
    for tool in listing.tools:
        prop = tool.input_schema.get("properties", {}).get("session_key")
        if prop is None:
            continue
        stated = [int(n) for n in re.findall(r"\bmax (\d+)", prop.get("description", ""))]
        if not stated:
            continue
        stating += 1
        if stated != [limit]:
            problems.append(f"`{tool.name}`: session_key description says max {stated}; the limit is {limit}")
        if prop.get("maxLength") != limit:
            problems.append(f"`{tool.name}`: session_key maxLength is {prop.get('maxLength')}; the limit is {limit}")
    assert stating, "no tool's session_key description states its maximum length any more; update this test"
    assert not problems, "\n".join(problems)
