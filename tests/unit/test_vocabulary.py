"""Each vocabulary is defined once (a domain enum) and everything else derives from it."""

from __future__ import annotations

import argparse
from enum import StrEnum

import pytest
from pydantic import TypeAdapter

from handoff.cli import _parser
from handoff.domain.analysis import AnalysisType, Reason
from handoff.domain.models import ContextType, HandoffStatus, HandoffType, ParticipantRole, SessionStatus
from handoff.domain.retention import POLICIES
from handoff.errors import ERROR_CODES, HandoffError
from handoff.mcp import analysis_tool, schemas
from handoff.services.analysis import ANALYSIS_TYPES
from handoff.services.lifecycle import JOBS
from handoff.storage import tables


def values(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]


@pytest.mark.parametrize(
    ("alias", "enum"),
    [
        (schemas.SessionStatusName, SessionStatus),
        (schemas.ContextTypeName, ContextType),
        (schemas.HandoffTypeName, HandoffType),
        (schemas.HandoffStatusName, HandoffStatus),
        (schemas.RoleName, ParticipantRole),
        (analysis_tool.AnalysisTypeName, AnalysisType),
        (analysis_tool.ReasonName, Reason),
    ],
)
def test_wire_schemas_list_exactly_the_enum_values(alias: object, enum: type[StrEnum]) -> None:
    assert TypeAdapter(alias).json_schema()["enum"] == values(enum)


def test_retention_names_come_from_the_policies() -> None:
    assert TypeAdapter(schemas.RetentionName).json_schema()["enum"] == list(POLICIES)


@pytest.mark.parametrize(
    ("table", "column", "enum"),
    [
        (tables.sessions, "status", SessionStatus),
        (tables.context_entries, "context_type", ContextType),
        (tables.handoffs, "handoff_type", HandoffType),
        (tables.handoffs, "status", HandoffStatus),
        (tables.session_participants, "role", ParticipantRole),
    ],
)
def test_table_checks_allow_exactly_the_enum_values(table: object, column: str, enum: type[StrEnum]) -> None:
    checks = [
        str(c.sqltext) for c in table.constraints if hasattr(c, "sqltext") and str(c.sqltext).startswith(column + " IN")
    ]  # type: ignore[attr-defined]
    assert checks == [f"{column} IN ({', '.join(repr(v) for v in values(enum))})"]


def test_error_codes_are_the_error_classes_codes() -> None:
    def codes(cls: type[HandoffError]) -> set[str]:
        return {c.code for c in cls.__subclasses__()} | {x for c in cls.__subclasses__() for x in codes(c)}

    assert codes(HandoffError) | {"internal"} == ERROR_CODES


def test_cli_choices_and_service_tuples_derive_from_the_sources() -> None:
    parser = _parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    jobs = next(a for a in subcommands.choices["jobs"]._actions if isinstance(a, argparse._SubParsersAction))
    run = next(a for a in jobs.choices["run"]._actions if a.dest == "name")
    assert list(run.choices) == [*JOBS, "all"]  # type: ignore[arg-type]
    sessions = next(a for a in subcommands.choices["sessions"]._actions if isinstance(a, argparse._SubParsersAction))
    status = next(a for a in sessions.choices["list"]._actions if a.dest == "status")
    assert list(status.choices) == values(SessionStatus)  # type: ignore[arg-type]
    assert list(ANALYSIS_TYPES) == values(AnalysisType)
