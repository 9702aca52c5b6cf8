"""What a change did, in a line: the names a new file defines, the lines an edit or a patch adds,
what a heredoc or a `printf > file` wrote, a commit's subject, a subagent's report."""

from __future__ import annotations

import difflib
import re
from typing import Any

from handoff.domain.tooluse import EDITOR_VERBS, HEREDOC, ToolUse, first_str, has_patch


def edit_gist(old: str, new: str) -> str:
    """What an old → new replacement adds, as the first changed lines."""
    added = [
        line[1:].strip()
        for line in difflib.unified_diff(old[:20_000].splitlines(), new[:20_000].splitlines(), lineterm="", n=0)
        if line.startswith("+") and not line.startswith("+++") and len(line.strip()) > 3
    ]
    return " ⏎ ".join(" ".join(a.split()) for a in added[:2])[:160]


_MERGE_MARKER = re.compile(r"^\s*(?:<{7}|={7}|>{7})(?:\s|$)")


_IMPORT_LINE = re.compile(
    r"^\s*(?:import\b|from\s+\S+\s+import\b|#include\b|using\s+[\w.]+;|require\(|use\s+[\w:]+;|package\s+\w|"
    r"(?:const|let|var)\s+\w+\s*=\s*require\()"
)
_DEFINITION = re.compile(
    r"^\s*(?:export\s+)?(?:default\s+)?(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?"
    r"(?:def|class|function|interface|type|struct|enum|trait|fn|func|module)\s+(\w+)"
    r"|^\s*(?:export\s+)?(?:const|let|var)\s+(\w+)\s*(?::[^=]+)?=\s*(?:async\s*)?(?:\(|function|\w+\s*=>)"
)
_COMMENT_LINE = re.compile(r"^\s*(?://|/?\*|<!--|#(?!\w)|--\s|;)")
_TRIVIAL = frozenset(["{", "}", "});", ")", "]", "};", "end", "fi", "done", "else:", "else {", "} else {", "pass"])


def _telling(lines: list[str], limit: int = 2) -> list[str]:
    """The lines of a change worth a glance: not imports, markers or lone brackets, shortest first kept in order."""
    body = [
        " ".join(line.split())
        for line in lines
        if line.strip() and len(line.strip()) > 3 and line.strip() not in _TRIVIAL and not _MERGE_MARKER.match(line)
    ]
    telling = [line for line in body if not _IMPORT_LINE.match(line)]
    code = [line for line in telling if not _COMMENT_LINE.match(line)]
    return (code or telling or body)[:limit]


def change_gist(text: str) -> str:
    """What a change adds, in a line: the names a new file defines, or the first telling lines it adds."""
    head = text[:20_000]
    added = [line[1:] for line in head.splitlines() if line.startswith("+") and not line.startswith("+++")]
    content = added or [ln for ln in head.splitlines()[1:] if not ln.startswith("-")]
    names = []
    for line in content[:600]:
        if match := _DEFINITION.match(line):
            name = match.group(1) or match.group(2)
            if name and not name.startswith("__") and name not in names:
                names.append(name)
    parts = _telling(content)
    if len(names) >= 2 or (names and not added):
        shown = ", ".join(names[:6]) + (f" (+{len(names) - 6})" if len(names) > 6 else "")
        gist = f"defines {shown}"
        rest = [p for p in parts if not _DEFINITION.match(p)][:1]
        return (gist + (" ⏎ " + rest[0] if rest else ""))[:160]
    return " ⏎ ".join(parts)[:160]


_PATCH_FILE = re.compile(r"^\*\*\* (?:Update|Add|Delete) File: (.+?)\s*$|^\+\+\+ (?:b/)?(\S+)", re.M)


def _hunk_names(section: str) -> list[str]:
    """The functions and classes a patch's hunks sit in: named by `@@ … def x` or an unchanged definition line."""
    names: list[str] = []
    for line in section[:50_000].splitlines():
        if line.startswith("@@"):
            line = line.split("@@")[-1]
        elif not line.startswith(" "):
            continue
        match = _DEFINITION.match(line.strip())
        name = (match.group(1) or match.group(2)) if match else None
        if name and name not in names and not name.startswith("__"):
            names.append(name)
    return names[:4]


def change_lines(use: ToolUse, limit: int) -> str:
    """What a call changes, in up to `limit` characters: the telling lines it adds, file by file."""
    data = use.input or {}
    parts: list[str] = []
    if use.script and has_patch(use.script):
        sections = list(_PATCH_FILE.finditer(use.script[:200_000]))
        for index, match in enumerate(sections):
            end = sections[index + 1].start() if index + 1 < len(sections) else len(use.script)
            section = use.script[match.end() : end]
            added = [line[1:] for line in section.splitlines() if line.startswith("+")]
            name = (match.group(1) or match.group(2) or "").rsplit("/", 1)[-1]
            where = _hunk_names(section)
            parts.append(f"{name}{' in ' + ', '.join(where) if where else ''}: " + " ⏎ ".join(_telling(added, 12)))
    elif use.script and (heredoc := HEREDOC.search(use.script[:50_000])):
        parts.append(" ⏎ ".join(_telling(heredoc.group(2).splitlines(), 12)))
    elif isinstance(data.get("new_string"), str):
        old = str(data.get("old_string") or "").splitlines()
        added = [line for line in data["new_string"].splitlines() if line not in old]
        parts.append(" ⏎ ".join(_telling(added, 12)))
    elif isinstance(data.get("content"), str):
        parts.append(" ⏎ ".join(_telling(data["content"].splitlines(), 12)))
    text = " | ".join(p for p in parts if p.strip(": "))
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


_PRINTED = re.compile(r"(?:^|[;&|]\s*)(?:printf|echo(?:\s+-[neE]+)?)\s+((?:'[^']*'|\"[^\"]*\"|\s)+)\s*>{1,2}", re.S)


def script_change(script: str, path: str) -> str:
    """What a multi-line shell command did to `path`: its part of a patch, or the heredoc it wrote."""
    if has_patch(script):
        sections = list(_PATCH_FILE.finditer(script[:200_000]))
        for index, match in enumerate(sections):
            name = match.group(1) or match.group(2) or ""
            if name == path or name.endswith("/" + path) or path.endswith("/" + name):
                end = sections[index + 1].start() if index + 1 < len(sections) else len(script)
                section = script[match.end() : end]
                where = _hunk_names(section)
                gist = change_gist(section)
                return (f"in {', '.join(where)}: " if where and not gist.startswith("defines") else "") + gist
        return change_gist(script)
    heredoc = HEREDOC.search(script[:50_000])
    if heredoc and heredoc.group(2).strip():
        return change_gist("x\n" + heredoc.group(2))
    printed = _PRINTED.search(script[:50_000])
    if printed and path and path in script[printed.end() : printed.end() + 400]:
        # `printf '%s\n' 'a = 1' 'b = 2' > file`: what was written is the quoted text.
        quoted = [q for q in re.findall(r"'([^']*)'|\"([^\"]*)\"", printed.group(1)) for q in q if q]
        lines = [q for q in quoted if not re.fullmatch(r"%[sb](?:\\n|\n)?|\\n", q)]
        return " ⏎ ".join(_telling(lines, 4))[:160]
    first, _, body = script.partition("\n")
    verb = first.split(maxsplit=1)[0].lower() if first.split() else ""
    if body.strip() and EDITOR_VERBS.get(verb) not in (None, "read"):
        return change_gist("x\n" + body.replace("end_of_edit", ""))
    return ""


_COMMIT_M = re.compile(r"""\bgit\b[^;&|]*\bcommit\b[^;&|]*?-\w*m\s*(?:"((?:[^"\\]|\\.)+)"|'([^']+)')""")
_COMMITHEREDOC = re.compile(r"\bgit\b.*\bcommit\b.*?<<-?\s*'?(\w+)'?\s*(?:⏎|\n)(.*?)(?:⏎|\n)\s*\1\b", re.S)


_DELEGATING_TOOLS = {"task", "agent", "dispatch_agent", "spawn_agent", "subagent", "delegate", "new_task"}


def delegation_of(tool: str, data: dict[str, Any]) -> tuple[str, str] | None:
    """A call that hands work to a subagent (Claude Code's Task/Agent): (what, the ask in brief)."""
    prompt = first_str(data, "prompt", "task", "instructions", "message")
    if tool.lower() not in _DELEGATING_TOOLS and "subagent_type" not in data:
        return None
    if not prompt and not data.get("description"):
        return None
    what = first_str(data, "description", "subagent_type") or "subagent"
    ask = " ".join(str(data.get("prompt") or data.get("task") or "").split())
    kind = first_str(data, "subagent_type")
    label = f"{what} ({kind})" if kind and kind not in what and kind != "general-purpose" else what
    return label[:120], ask[:400]


def report_gist(output: str) -> str:
    """A subagent's report in a line: its first sentences that are not headings."""
    lines = []
    for line in output[:6000].splitlines():
        text = line.strip().strip("#*_ ").strip()
        if len(text) < 12 or text.endswith(":") or text.lower() in ("summary", "result", "results"):
            continue
        lines.append(" ".join(text.split()))
        if sum(len(x) for x in lines) > 200:
            break
    return " ".join(lines)[:300]


_COMMIT_OUTPUT = re.compile(r"^\[([\w./-]+)(?: \(root-commit\))? ([0-9a-f]{7,40})\] (.+)$", re.M)


def commit_of_output(output: str) -> tuple[str, str] | None:
    """`[main 5a0a0b0] Fix the parser` as git prints it after a commit: (sha, subject)."""
    match = _COMMIT_OUTPUT.search(output[:4000])
    return (match.group(2), match.group(3).strip()[:240]) if match else None


def commit_message(command: str) -> str | None:
    """The message of a `git commit -m …` (or heredoc) command: the agent's summary of a change."""
    if match := _COMMITHEREDOC.search(command):
        lines = [line.strip() for line in match.group(2).replace(" ⏎ ", "\n").splitlines() if line.strip()]
        return " ".join(lines[:3])[:300] if lines else None
    if match := _COMMIT_M.search(command):
        text = match.group(1) or match.group(2) or ""
        text = text.replace('\\"', '"').replace("\\n", " ")
        return " ".join(text.split())[:300] or None
    return None
