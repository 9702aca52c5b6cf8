"""The README's reference sections say what the code does: tools, prompts, resources, settings, commands.

Each test reads a README section, reads the same facts off the code (the live server, the Settings
model, the argparse parser) and fails with the edit that brings the README back in line.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import AliasChoices, BaseModel, ValidationError

from handoff.cli import _parser
from handoff.config import Settings
from tests.docs.conftest import Listing
from tests.docs.markdown import blocks, code_spans, readme, section, split_row, table_rows

# -- signatures: `name(a, b=default)` ------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    default: str | None  # the text after `=`, None when the parameter is written without one


@dataclass(frozen=True)
class Signature:
    name: str
    params: tuple[Param, ...]


def _split_arguments(text: str) -> list[str]:
    """Split at the commas that are not inside brackets or quotes."""
    parts: list[str] = []
    depth, quote, start = 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote and text[i - 1] != "\\" else quote
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_signature(cell: str) -> Signature | None:
    spans = code_spans(cell)
    match = re.fullmatch(r"([A-Za-z_]\w*)\((.*)\)", spans[0], re.S) if spans else None
    if match is None:
        return None
    params = []
    for part in _split_arguments(match[2]):
        name, eq, default = part.partition("=")
        params.append(Param(name.strip(), default.strip() if eq else None))
    return Signature(match[1], tuple(params))


def signature_rows(title: str) -> dict[str, Signature]:
    _, body = section(readme(), title)
    rows: dict[str, Signature] = {}
    for cells in table_rows(body):
        signature = parse_signature(cells[0])
        assert signature is not None, (
            f"README `## {title}` row {cells[0]!r} does not start with `name(param, param=default)`; write it so"
        )
        rows[signature.name] = signature
    return rows


def _json_types(prop: dict[str, Any]) -> set[str]:
    kinds = {prop["type"]} if isinstance(prop.get("type"), str) else set(prop.get("type") or ())
    for option in prop.get("anyOf", ()):
        kinds |= _json_types(option)
    return kinds


def _same_value(written: Any, expected: Any) -> bool:
    numbers = (int, float)
    if isinstance(written, numbers) and isinstance(expected, numbers):
        return not isinstance(written, bool) and not isinstance(expected, bool) and written == expected
    return json.dumps(written, sort_keys=True) == json.dumps(expected, sort_keys=True)


def _python_literal(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str | dict | list) else repr(value)


def tool_signature(tool: Any) -> str:
    schema = tool.input_schema
    required = set(schema.get("required", ()))
    params = [
        name if name in required else f"{name}={_python_literal(prop.get('default'))}"
        for name, prop in schema.get("properties", {}).items()
    ]
    return f"{tool.name}({', '.join(params)})"


def default_problem(tool: str, param: Param, prop: dict[str, Any], required: bool) -> str | None:
    """What is wrong with how the README writes one parameter, or None."""
    if required:
        if param.default is not None:
            return f"`{tool}`: `{param.name}` is required; write it without `={param.default}`"
        return None
    expected = prop.get("default")
    if param.default is None:
        return f"`{tool}`: `{param.name}` is optional; write `{param.name}={_python_literal(expected)}`"
    try:
        written = ast.literal_eval(param.default)
    except (ValueError, SyntaxError):
        return f"`{tool}`: the default of `{param.name}`, `{param.default}`, is not a Python literal"
    if _same_value(written, expected):
        return None
    # `metadata={}` documents what an omitted (null) object means to the tool.
    if expected is None and written in ({}, []) and _json_types(prop) & {"object", "array"}:
        return None
    return (
        f"`{tool}`: README writes `{param.name}={param.default}` but the default is "
        f"`{_python_literal(expected)}`; write `{param.name}={_python_literal(expected)}`"
    )


# -- tools, prompts, resources ---------------------------------------------------------------------


def test_tool_table_names_every_tool_and_only_those(listing: Listing) -> None:
    rows = signature_rows("Tools")
    live = {tool.name: tool for tool in listing.tools}
    missing = [
        f"README tool table lacks `{name}`; add a row `{tool_signature(live[name])}`"
        for name in live.keys() - rows.keys()
    ]
    extra = [
        f"README tool table names `{name}`, which the server does not have; remove the row"
        for name in rows.keys() - live.keys()
    ]
    assert not missing + extra, "\n".join(sorted(missing + extra))


def test_tool_table_writes_each_tool_with_its_parameters_in_order_and_their_defaults(listing: Listing) -> None:
    rows = signature_rows("Tools")
    problems: list[str] = []
    for tool in listing.tools:
        row = rows.get(tool.name)
        if row is None:
            continue  # the test above names it
        properties: dict[str, dict[str, Any]] = tool.input_schema.get("properties", {})
        required = set(tool.input_schema.get("required", ()))
        if [p.name for p in row.params] != list(properties):
            problems.append(
                f"README row for `{tool.name}` lists ({', '.join(p.name for p in row.params)}) but the tool takes "
                f"({', '.join(properties)}); write `{tool_signature(tool)}`"
            )
            continue
        for param in row.params:
            problem = default_problem(tool.name, param, properties[param.name], param.name in required)
            if problem:
                problems.append(problem)
    assert not problems, "\n".join(problems)


def test_prompt_table_names_every_prompt_with_its_arguments(listing: Listing) -> None:
    rows = signature_rows("Prompts")
    problems: list[str] = []
    for prompt in listing.prompts:
        arguments = prompt.arguments or []
        expected = f"{prompt.name}({', '.join(a.name if a.required else a.name + '=None' for a in arguments)})"
        row = rows.get(prompt.name)
        if row is None:
            problems.append(f"README prompt table lacks `{prompt.name}`; add a row `{expected}`")
        elif [(p.name, p.default is None) for p in row.params] != [(a.name, bool(a.required)) for a in arguments]:
            problems.append(f"README row for prompt `{prompt.name}` should read `{expected}` (arguments in order)")
    problems += [
        f"README prompt table names `{name}`, which the server does not have; remove the row"
        for name in rows.keys() - {p.name for p in listing.prompts}
    ]
    assert not problems, "\n".join(problems)


def test_resource_table_names_every_resource_and_template_exactly(listing: Listing) -> None:
    heading, body = section(readme(), "Resources")
    written = {code_spans(cells[0])[0] for cells in table_rows(body) if code_spans(cells[0])}
    live = {str(r.uri) for r in listing.resources} | {t.uri_template for t in listing.templates}
    problems = [
        f"README resource table lacks `{uri}`; add a row with that exact URI (template)" for uri in live - written
    ]
    problems += [
        f"README resource table names `{uri}`, which the server does not serve; fix the URI or remove the row"
        for uri in written - live
    ]
    assert not problems, "\n".join(sorted(problems))
    if stated := [s for s in code_spans(heading) if "/" in s]:
        for item in [*listing.resources, *listing.templates]:
            assert item.mime_type in stated, (
                f"README says resources are {stated}, but `{item.name}` is `{item.mime_type}`; fix the heading"
            )


# -- settings -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variable:
    name: str
    path: tuple[str, ...]
    default: Any

    @property
    def is_override(self) -> bool:
        """A top-level short name (HANDOFF_DATABASE_URL …): unset by default, it overrides a group field."""
        return len(self.path) == 1 and self.default is None


def _env_names(prefix: str, name: str, f: Any) -> list[str]:
    alias = f.validation_alias or f.alias
    if isinstance(alias, str):
        return [alias.upper()] if prefix == "HANDOFF_" else [prefix + alias.upper()]
    if isinstance(alias, AliasChoices):
        return [str(choice).upper() for choice in alias.choices if isinstance(choice, str)]
    return [prefix + name.upper()]


def _walk(model: type[BaseModel], prefix: str, path: tuple[str, ...]) -> Iterator[Variable]:
    for name, f in model.model_fields.items():
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel):
            yield from _walk(f.annotation, f"{prefix}{name.upper()}__", (*path, name))
        else:
            default = f.get_default(call_default_factory=True)
            for env in _env_names(prefix, name, f):
                yield Variable(env, (*path, name), default)


VARIABLES = {v.name: v for v in _walk(Settings, "HANDOFF_", ())}
_VARIABLE = re.compile(r"\bHANDOFF_[A-Z0-9_]*[A-Z0-9]\b")


@dataclass
class SettingRow:
    variables: list[str]
    defaults: dict[str, str | None] = field(default_factory=dict)  # literal, or None for prose


def settings_rows() -> list[SettingRow]:
    _, body = section(readme(), "Settings")
    rows: list[SettingRow] = []
    for cells in table_rows(body):
        names = [s for s in code_spans(cells[0]) if _VARIABLE.fullmatch(s)]
        if not names or len(cells) < 2:
            continue
        row = SettingRow(names)
        parts = cells[1].split(" / ")
        for i, name in enumerate(names):
            text = (parts[i] if len(parts) == len(names) else cells[1]).strip()
            row.defaults[name] = code_spans(text)[0] if text.startswith("`") else None
        rows.append(row)
    return rows


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return str(value)


def test_settings_table_documents_every_setting() -> None:
    documented = {name for row in settings_rows() for name in row.variables}
    missing = [
        f"README Settings table lacks `{v.name}`; add a row"
        + (f" with its default `{_env_text(v.default)}`" if v.default not in (None, [], {}, "") else "")
        for v in VARIABLES.values()
        if v.name not in documented
    ]
    assert not missing, "\n".join(missing)


def test_readme_names_only_variables_that_exist() -> None:
    named = {n for n in _VARIABLE.findall(readme()) if not n.startswith("HANDOFF_TEST_")}  # test-suite knobs
    unknown = sorted(named - VARIABLES.keys())
    assert not unknown, "\n".join(
        f"README names `{name}`, which Settings does not read; fix the name or remove it" for name in unknown
    )


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith("HANDOFF_"):
            monkeypatch.delenv(name)
    return monkeypatch


def _effective(settings: Settings, leave_out: str | None) -> dict[str, Any]:
    dumped = settings.model_dump()
    dumped.pop(leave_out, None)
    return dumped


def _differences(before: Any, after: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted path, before, after) of every leaf that differs."""
    if isinstance(before, dict) and isinstance(after, dict):
        return [
            d
            for key in sorted(before.keys() | after.keys())
            for d in _differences(before.get(key), after.get(key), f"{path}.{key}".strip("."))
        ]
    return [] if before == after else [(path, before, after)]


def test_settings_table_defaults_are_the_code_defaults(clean_environment: pytest.MonkeyPatch) -> None:
    """Setting a variable to the default the table writes must change nothing.

    A short name (HANDOFF_LOG_LEVEL) is unset by default; what it must leave unchanged is the
    setting it stands for. A default written as prose ("unset: …") is allowed only where the
    code's default is unset or empty.
    """
    baseline = Settings()
    problems: list[str] = []
    for row in settings_rows():
        for name, literal in row.defaults.items():
            variable = VARIABLES.get(name)
            if variable is None:
                continue  # test_readme_names_only_variables_that_exist names it
            if literal is None:
                if variable.default not in (None, [], {}, ""):
                    problems.append(
                        f"README Settings table gives `{name}` no literal default; "
                        f"start its default cell with `{_env_text(variable.default)}`"
                    )
                continue
            own_field = variable.path[0] if variable.is_override else None
            clean_environment.setenv(name, literal)
            try:
                changed = _differences(_effective(baseline, own_field), _effective(Settings(), own_field))
            except ValidationError as error:
                problems.append(
                    f"README Settings table says `{name}` defaults to `{literal}`, which the variable does not "
                    f"accept ({error.errors()[0]['msg']}); write the default as the variable would be set"
                )
                continue
            finally:
                clean_environment.delenv(name)
            if changed:
                what = "; ".join(f"{path}: {_env_text(old)} -> {_env_text(new)}" for path, old, new in changed)
                fix = " / ".join(f"`{_env_text(old)}`" for _, old, _ in changed)
                problems.append(
                    f"README Settings table says `{name}` defaults to `{literal}`, but setting it to that changes "
                    f"{what}; write {fix} in the default cell"
                )
    assert not problems, "\n".join(problems)


# -- command line -----------------------------------------------------------------------------------


@dataclass
class Command:
    path: tuple[str, ...]
    options: dict[str, argparse.Action]
    positionals: list[argparse.Action]
    subcommands: dict[str, Command]

    @property
    def line(self) -> str:
        return " ".join(("handoff", *self.path))

    def suggestion(self) -> str:
        words = [self.line, *(_metavar(a) for a in self.positionals)]
        for action in dict.fromkeys(self.options.values()):
            flag = max(action.option_strings, key=len)
            words.append(f"[{flag}]" if action.nargs == 0 else f"[{flag} {_metavar(action)}]")
        return " ".join(words)


def _metavar(action: argparse.Action) -> str:
    if action.choices and len(action.choices) <= 4:
        return "|".join(str(c) for c in action.choices)
    name = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    return name + ("…" if action.nargs in ("+", "*") else "")


def _command(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> Command:
    options: dict[str, argparse.Action] = {}
    positionals: list[argparse.Action] = []
    subcommands: dict[str, Command] = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._SubParsersAction):
            hidden = {a.dest for a in action._choices_actions if a.help == argparse.SUPPRESS}
            seen: set[int] = set()
            for name, sub in action.choices.items():  # aliases map to a parser already seen
                if id(sub) not in seen and name not in hidden:
                    seen.add(id(sub))
                    subcommands[name] = _command(sub, (*path, name))
        elif action.option_strings:
            options.update(dict.fromkeys(action.option_strings, action))
        else:
            positionals.append(action)
    return Command(path, options, positionals, subcommands)


def all_commands(command: Command) -> Iterator[Command]:
    yield command
    for sub in command.subcommands.values():
        yield from all_commands(sub)


@dataclass
class Usage:
    command: Command
    options: set[argparse.Action]


def _is_placeholder(word: str) -> bool:
    return word.upper() == word and any(c.isalpha() for c in word)


def _value_problem(text: str, action: argparse.Action, where: str) -> str | None:
    """`stdio|http`, `NAME|all`, `claude-code`: literal words must be choices; a full list must be all of them."""
    if not action.choices:
        return None
    words = text.split("|")
    literals = [w for w in words if not _is_placeholder(w)]
    choices = [str(c) for c in action.choices]
    if bad := [w for w in literals if w not in choices]:
        return f"`{where}` offers {bad}, which `{action.dest}` does not accept (choices: {'|'.join(choices)})"
    if len(literals) == len(words) > 1 and set(literals) != set(choices):
        return f"`{where}` lists {'|'.join(words)}; the choices are {'|'.join(choices)}"
    return None


def parse_usage(span: str, root: Command) -> tuple[Usage | None, list[str]]:
    words = [w for w in (w.rstrip("…").removesuffix("...") for w in re.sub(r"[\[\]]", " ", span).split()) if w][1:]
    command, i = root, 0
    while i < len(words) and command.subcommands and not words[i].startswith("-"):
        if words[i] not in command.subcommands:
            return None, [
                f"README names `{span}`, but `{command.line}` has no subcommand `{words[i]}` "
                f"(it has {', '.join(command.subcommands)}); fix or remove it"
            ]
        command = command.subcommands[words[i]]
        i += 1
    usage, problems, positionals = Usage(command, set()), [], []
    rest = words[i:]
    j = 0
    while j < len(rest):
        word = rest[j]
        if word.startswith("-"):
            flag = word.split("=", 1)[0]
            action = command.options.get(flag)
            if action is None:
                problems.append(f"README names `{flag}` for `{command.line}`, which has no such option; remove it")
            else:
                usage.options.add(action)
                value = word.partition("=")[2]
                if action.nargs != 0 and "=" not in word and j + 1 < len(rest) and not rest[j + 1].startswith("-"):
                    value = rest[j + 1]
                    j += 1
                if value and (problem := _value_problem(value, action, span)):
                    problems.append(problem)
        else:
            positionals.append(word)
        j += 1
    if len(positionals) != len(command.positionals):
        problems.append(
            f"`{span}`: `{command.line}` takes {len(command.positionals)} positional argument(s), README shows "
            f"{len(positionals)}; write `{command.suggestion()}`"
        )
    else:
        problems += [
            p for w, a in zip(positionals, command.positionals, strict=True) if (p := _value_problem(w, a, span))
        ]
    return usage, problems


def test_command_line_reference_matches_the_parser() -> None:
    """Every command (nested ones and those added by other modules too) has a line naming all its options;
    nothing is named that the parser does not have."""
    root = _command(_parser(), ())
    _, body = section(readme(), "Command line")
    problems: list[str] = []
    usages: list[Usage] = []
    for block in blocks(body):
        spans = code_spans(block)
        here: list[Usage] = []
        for span in spans:
            if span.split()[:1] == ["handoff"]:
                usage, found = parse_usage(span, root)
                problems += found
                if usage is not None:
                    here.append(usage)
        for span in spans:
            if span.startswith("-") and here:
                flag = span.split()[0].split("=", 1)[0]
                if not any(flag in u.command.options for u in here):
                    problems.append(
                        f"README mentions `{flag}` next to `{here[0].command.line}`, which has no such option"
                    )
        usages += here
    for command in all_commands(root):
        if command.subcommands and not command.options:
            continue  # a group (`jobs`, `sessions`): its subcommands are what is run
        named = [u for u in usages if u.command is command]
        if not named:
            problems.append(
                f"README Command line section lacks `{command.line}`; add a line like `{command.suggestion()}`"
            )
            continue
        shown = set().union(*(u.options for u in named))
        for action in dict.fromkeys(command.options.values()):
            if action not in shown:
                flag = max(action.option_strings, key=len)
                problems.append(f"README line for `{command.line}` does not name `{flag}`; add it")
    assert not problems, "\n".join(problems)


def test_table_rows_split_on_pipes_outside_code() -> None:
    assert split_row("| `a|b` | c \\| d |") == ["`a|b`", "c | d"]


# -- examples outside the reference sections ------------------------------------------------------------


def _fenced(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def test_every_json_example_in_the_readme_parses() -> None:
    examples = _fenced(readme(), "json")
    assert len(examples) >= 3
    for example in examples:
        json.loads(example)  # a snippet a user pastes must be valid JSON


def test_every_handoff_command_in_the_readme_is_accepted_by_the_parser() -> None:
    parser = _parser()
    commands = []
    for example in _fenced(readme(), "sh"):
        for line in example.splitlines():
            words = line.split("#", 1)[0].split()
            if words and words[0].endswith("handoff") and not any("$(" in w for w in words):
                commands.append(words[1:])
    assert len(commands) >= 6
    for arguments in commands:
        try:
            parser.parse_args(arguments)
        except SystemExit:
            pytest.fail(f"README shows `handoff {' '.join(arguments)}`, which the parser rejects")
