"""What a tool call did: its name, the shell command, the exit status, the files it touched.

Integrations send tool calls in every shape: structured metadata (`tool`, `input`, `exit_code`), a
JSON document as the content, or plain text (`$ pytest -q` and the output). Agents also put the
command in their own message (mini-swe-agent's ```bash block) and get the output back as a "user"
message (`<returncode>1</returncode><output>…`). This module reads all of them into one shape.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

MAX_COMMAND_CHARS = 300
MAX_JSON_CHARS = 2_000_000


@dataclass(slots=True)
class ToolUse:
    tool: str | None = None
    call_id: str | None = None
    command: str | None = None
    input: dict[str, Any] | None = None
    output: str | None = None
    exit_code: int | None = None
    failed: bool | None = None
    files: list[tuple[str, str]] = field(default_factory=list)  # (path, action)


def first_str(data: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:300]
    return None


def _as_dict(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.lstrip().startswith("{") and len(value) < MAX_JSON_CHARS:
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,6}", value.strip()):
        return int(value)
    return None


_EXIT_PATTERNS = [
    re.compile(r"<returncode>\s*(-?\d+)\s*</returncode>"),
    re.compile(r"^(?:Process )?[Ee]xit(?:ed with)? (?:code|status)[:= ]\s*(-?\d+)", re.M),
    re.compile(r"^Process exited with code (-?\d+)", re.M),
    re.compile(r"^\[?(?:exit|return) code:? (-?\d+)\]?\s*$", re.M | re.I),
    re.compile(r"^Command (?:exited|failed) with (?:exit )?code (-?\d+)", re.M),
]
_TEXT_COMMAND = [
    re.compile(r"^\s*\$ (.+)$", re.M),
    re.compile(r"^(?:Command|Ran|Running|Executing|Execute|cmd):\s*`?(.+?)`?\s*$", re.M | re.I),
]
_FENCE_LINE = re.compile(r"^\s*```\s*([\w.+-]*)\s*$")
_SHELL_LANGUAGES = {"bash", "sh", "shell", "console", "zsh", "mswea_bash_command", "terminal"}
_TOOL_PREFIX = re.compile(r"^\s*(?:\[tool(?:_call)?\]\s*)?([A-Z][A-Za-z_]+|[a-z_]+)\s*(?:\(|:\s)")
_SHELL_TOOLS = {
    "bash",
    "shell",
    "exec_command",
    "run_shell_command",
    "execute_command",
    "terminal",
    "run",
    "sh",
    "container.exec",
    "local_shell",
    "shell_command",
    "execute_bash",
    "cmd",
    "run_terminal_cmd",
}


def read_tool_call(content: str, metadata: dict[str, Any]) -> ToolUse:
    """Interpret a tool_call entry, whatever shape the integration chose."""
    use = ToolUse()
    use.tool = first_str(metadata, "tool", "tool_name", "name", "function", "recipient_name")
    use.call_id = first_str(metadata, "tool_use_id", "call_id", "tool_call_id", "id")
    use.input = (
        _as_dict(metadata.get("input"))
        or _as_dict(metadata.get("arguments"))
        or _as_dict(metadata.get("args"))
        or _as_dict(metadata.get("parameters"))
    )
    document = _as_dict(content) if content.lstrip().startswith("{") else None
    if document is not None:
        use.tool = use.tool or first_str(document, "tool", "tool_name", "name", "function")
        use.call_id = use.call_id or first_str(document, "tool_use_id", "call_id", "id")
        use.input = (
            use.input
            or _as_dict(document.get("input"))
            or _as_dict(document.get("arguments"))
            or (_as_dict(document.get("args")) or _as_dict(document.get("parameters")))
        )
        if use.input is None and _looks_like_input(document):
            use.input = document
        out = document.get("output", document.get("result", document.get("stdout")))
        if isinstance(out, dict):
            inner = out
            out = inner.get("output", inner.get("stdout", inner.get("content")))
            code = (
                _as_int((inner.get("metadata") or {}).get("exit_code"))
                if isinstance(inner.get("metadata"), dict)
                else None
            )
            use.exit_code = code if code is not None else _as_int(inner.get("exit_code"))
        if isinstance(out, str):
            use.output = out
            if isinstance(document.get("stderr"), str) and document["stderr"]:
                use.output += "\n" + document["stderr"]
        elif isinstance(out, list):
            use.output = "\n".join(str(x.get("text", "")) if isinstance(x, dict) else str(x) for x in out)
        meta = document.get("metadata")
        if isinstance(meta, dict) and use.exit_code is None:
            use.exit_code = _as_int(meta.get("exit_code"))
        for key in ("exit_code", "exitCode", "returncode", "return_code"):
            if use.exit_code is None:
                use.exit_code = _as_int(document.get(key))
    elif use.tool is None and (match := _TOOL_PREFIX.match(content)):
        use.tool = match.group(1)
    if use.tool is None and use.input is None and document is None:
        # A bare "$ cmd" transcript.
        use.tool = None

    for key in ("exit_code", "exitCode", "returncode", "return_code", "status_code"):
        if use.exit_code is None:
            use.exit_code = _as_int(metadata.get(key))
    status = str(metadata.get("status", "")).lower()
    if metadata.get("is_error") is True or status in {"error", "failed", "failure", "rejected", "cancelled"}:
        use.failed = True
    elif status in {"ok", "success", "succeeded", "completed", "passed"}:
        use.failed = False

    if use.input is not None:
        use.command = command_of(use.input)
        use.files = files_of_input(use.tool or "", use.input)
    raw_command = first_str(metadata, "command", "cmd")
    if use.command is None and raw_command:
        use.command = raw_command
    if use.output is None and document is None and use.input is None and metadata.get("phase") != "call":
        use.output = content
    if isinstance(metadata.get("output"), str):
        use.output = metadata["output"]
    if use.command is None and use.output:
        for pattern in _TEXT_COMMAND:
            if match := pattern.search(use.output[:2000]):
                use.command = match.group(1).strip()[:MAX_COMMAND_CHARS]
                break
    if use.exit_code is None and use.output:
        use.exit_code = exit_code_in(use.output)
    if use.exit_code is not None and use.failed is None:
        use.failed = use.exit_code != 0
    if use.command and not use.files:
        use.files = files_of_command(use.command)
    if use.output and not use.files and "*** Begin Patch" in use.output[:10_000]:
        use.files = files_of_patch(use.output)
    return use


def _looks_like_input(document: dict[str, Any]) -> bool:
    return any(
        key in document
        for key in ("command", "cmd", "file_path", "path", "todos", "plan", "patch", "old_string", "content")
    ) and not any(key in document for key in ("output", "result", "stdout"))


def command_of(data: dict[str, Any]) -> str | None:
    """The shell command in a tool's input, if it has one."""
    value = data.get("command", data.get("cmd"))
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        # Codex: ["bash", "-lc", "pytest -q"]
        if len(value) >= 3 and value[0].endswith(("bash", "sh", "zsh")) and value[1] in ("-lc", "-c", "-l"):
            value = value[-1]
        else:
            value = shlex.join(value)
    if isinstance(value, str) and value.strip():
        if data.get("path") and value in {"view", "create", "str_replace", "insert", "undo_edit"}:
            return None  # str_replace_editor's sub-command, not a shell line
        return " ".join(value.strip().split())[:MAX_COMMAND_CHARS] if "\n" not in value.strip() else _first_lines(value)
    return None


def _first_lines(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    joined = " ⏎ ".join(line.strip() for line in lines[:3])
    return (joined + (" …" if len(lines) > 3 else ""))[:MAX_COMMAND_CHARS]


def exit_code_in(text: str) -> int | None:
    head, tail = text[:4000], text[-4000:]
    for pattern in _EXIT_PATTERNS:
        for chunk in (head, tail):
            if match := pattern.search(chunk):
                return int(match.group(1))
    return None


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced code block, fences paired in order."""
    blocks: list[tuple[str, str]] = []
    language: str | None = None
    body: list[str] = []
    for line in text[:50_000].splitlines():
        match = _FENCE_LINE.match(line)
        if language is None:
            if match:
                language, body = match.group(1).lower(), []
            elif line.lstrip().startswith("```") and line.strip() != "```":
                # "```python" with trailing text: still an opening fence
                language, body = line.strip()[3:].split(" ", 1)[0].lower(), []
        elif match and not match.group(1):
            blocks.append((language, "\n".join(body)))
            language = None
        else:
            body.append(line)
    return blocks


def bash_blocks(text: str) -> list[str]:
    """Shell commands an agent wrote into its message as fenced blocks (mini-swe-agent, SWE-agent).

    A block marked as shell counts; an unmarked one only when it ends the message, the way agents
    that act by writing one command per turn put it.
    """
    blocks = fenced_blocks(text)
    found = [body.strip() for language, body in blocks if language in _SHELL_LANGUAGES and body.strip()]
    if not found and blocks and not blocks[-1][0] and text.rstrip().endswith("```"):
        found = [blocks[-1][1].strip()] if blocks[-1][1].strip() else []
    return found


# -- files ---------------------------------------------------------------------------------------
_EDIT_TOOLS = {
    "edit",
    "multiedit",
    "str_replace",
    "str_replace_editor",
    "str_replace_based_edit_tool",
    "replace",
    "edit_file",
    "apply_diff",
    "search_replace",
    "notebookedit",
    "insert",
    "patch",
}
_WRITE_TOOLS = {"write", "write_file", "create_file", "create", "writefile", "write_to_file"}
_READ_TOOLS = {"read", "read_file", "view", "view_file", "open", "cat", "readfile", "notebookread"}
_DELETE_TOOLS = {"delete", "delete_file", "remove_file", "rm"}


def files_of_input(tool: str, data: dict[str, Any]) -> list[tuple[str, str]]:
    name = tool.lower().replace("-", "_")
    path = first_str(data, "file_path", "path", "filePath", "notebook_path", "target_file", "filename", "file")
    sub = str(data.get("command", "")).lower() if isinstance(data.get("command"), str) else ""
    if path and sub in {"create"}:
        return [(path, "created")]
    if path and sub in {"str_replace", "insert", "undo_edit"}:
        return [(path, "reverted" if sub == "undo_edit" else "edited")]
    if path and sub == "view":
        return [(path, "read")]
    if path:
        if name in _EDIT_TOOLS:
            return [(path, "edited")]
        if name in _WRITE_TOOLS:
            return [(path, "written")]
        if name in _READ_TOOLS:
            return [(path, "read")]
        if name in _DELETE_TOOLS:
            return [(path, "deleted")]
    patch = data.get("patch", data.get("input"))
    if isinstance(patch, str) and "*** Begin Patch" in patch[:2000]:
        return files_of_patch(patch)
    return []


_PATCH_LINE = re.compile(r"^\*\*\* (Update|Add|Delete) File: (.+?)\s*$|^\*\*\* Move to: (.+?)\s*$", re.M)
_DIFF_TARGET = re.compile(r"^\+\+\+ (?:b/)?(\S+)", re.M)


def files_of_patch(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for match in _PATCH_LINE.finditer(text[:200_000]):
        if match.group(3):
            found.append((match.group(3), "moved here"))
            continue
        action = {"Update": "edited", "Add": "created", "Delete": "deleted"}[match.group(1)]
        found.append((match.group(2), action))
    if not found:
        found = [(p, "edited") for p in _DIFF_TARGET.findall(text[:200_000]) if p != "/dev/null"]
    return found[:20]


_REDIRECT = re.compile(r"(?<![<>0-9&])>{1,2}\s*['\"]?([\w./~-]+\.\w+|[\w.~-]+/[\w./-]+)['\"]?")
_SED_INPLACE = re.compile(r"\bsed\s+(?:-\w*i\w*|--in-place)\b.*?\s(['\"]?)([\w./-]+\.\w+)\1\s*(?:$|[;&|])")
_TEE = re.compile(r"\btee\s+(?:-a\s+)?['\"]?([\w./-]+)")
_RM = re.compile(r"(?:^|[;&|]\s*)rm\s+(?:-\w+\s+)*((?:['\"]?[\w./-]+['\"]?\s*)+)")
_GIT_RESTORE = re.compile(r"\bgit\s+(?:checkout\s+(?:HEAD\s+|\S+\s+)?--\s+|restore\s+(?:--\S+\s+)*)((?:[\w./-]+\s*)+)")
_TOUCH = re.compile(r"(?:^|[;&|]\s*)touch\s+((?:[\w./-]+\s*)+)")
_MV = re.compile(r"(?:^|[;&|]\s*)(?:git\s+)?mv\s+(?:-\w+\s+)*([\w./-]+)\s+([\w./-]+)")
_READERS = re.compile(
    r"(?:^|[;&|]\s*)(?:cat|head|tail|less|nl|sed\s+-n\s+'[^']*')\s+(?:-\S+\s+)*([\w./-]+\.\w+)\s*(?:$|[;&|])"
)
_PYTHON_RUN = re.compile(r"(?:^|[;&|]\s*)python3?\s+([\w./-]+\.py)\b")


def files_of_command(command: str) -> list[tuple[str, str]]:
    """Files a shell command writes, deletes or restores (and, last, the ones it only reads)."""
    found: list[tuple[str, str]] = []
    text = command.replace(" ⏎ ", "\n")
    first_line = text.split("\n", 1)[0]
    if re.search(r"\bgit\s+stash\b(?!\s+(?:list|show))", text):
        found.append(("(working tree)", "reverted (git stash)"))
    for match in _GIT_RESTORE.finditer(text):
        found.extend((p, "reverted") for p in match.group(1).split() if p not in ("."))
    if re.search(r"\bgit\s+(?:checkout|restore)\s+(?:--\s+)?\.(?:\s|$)", text) or re.search(
        r"\bgit\s+reset\s+--hard\b", text
    ):
        found.append(("(working tree)", "reverted"))
    found.extend((match.group(2), "edited") for match in _SED_INPLACE.finditer(text))
    found.extend(
        (m.group(1), "written")
        for m in _REDIRECT.finditer(first_line)
        if m.group(1) != "/dev/null" and not m.group(1).startswith("&")
    )
    found.extend((match.group(1), "written") for match in _TEE.finditer(first_line))
    for match in _RM.finditer(text):
        found.extend((p.strip("'\""), "deleted") for p in match.group(1).split() if not p.startswith("-"))
    for match in _TOUCH.finditer(text):
        found.extend((p, "created") for p in match.group(1).split())
    found.extend((match.group(1), f"moved to {match.group(2)}") for match in _MV.finditer(text))
    if not found:
        found.extend((m.group(1), "read") for m in _READERS.finditer(first_line))
        found.extend((m.group(1), "ran") for m in _PYTHON_RUN.finditer(first_line))
    return [(p, a) for p, a in found if 1 < len(p) <= 300][:12]


# -- errors --------------------------------------------------------------------------------------
_TRACEBACK = "Traceback (most recent call last):"
_EXCEPTION_LINE = re.compile(
    r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Failure|Fault|Timeout|Denied)\b.*)$"
)
_ERROR_LINES = [
    re.compile(r"^E\s{2,}((?:[\w.]+(?:Error|Exception)\b|assert\b).*)$"),
    re.compile(r"^(error(?:\[E\d+\])?: .+)$"),
    re.compile(r"^(\S+:\d+(?::\d+)?: (?:fatal )?error: .+)$"),
    re.compile(r"^((?:npm ERR!|fatal:|panic:|FATAL:|Error:|ERROR:|SyntaxError:|TypeError:|ReferenceError:) .+)$"),
    re.compile(r"^(.+: command not found)$"),
    re.compile(r"^(.+: No such file or directory)$"),
]


_NAMED_ERROR = re.compile(r"\b[A-Z]\w*(?:Error|Exception)\b:\s*\S.*$")
_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+), in (\S+)', re.M)


def _traceback_error(block: str, exception: str) -> str:
    """A bare exception (`AssertionError`) says little: add where it was raised and the line."""
    if ":" in exception and not exception.rstrip().endswith(":"):
        return exception
    frames = list(_FRAME.finditer(block))
    if not frames:
        return exception
    last = frames[-1]
    after = block[last.end() :].splitlines()
    code = next((line.strip() for line in after[1:3] if line.strip() and not line.lstrip().startswith("^")), "")
    where = f"{last.group(1).rsplit('/', 1)[-1]}:{last.group(2)} in {last.group(3)}"
    return f"{exception} at {where}" + (f": {code}" if code else "")


def last_error(output: str) -> str | None:
    """The line that says what went wrong: a traceback's last line, or the runner's error line."""
    text = output[-200_000:]
    position = text.rfind(_TRACEBACK)
    if position != -1:
        for line in text[position + len(_TRACEBACK) :].splitlines():
            if not line.strip() or line[:1].isspace():
                continue
            if line.startswith(("During handling", "The above exception")):
                continue
            if _EXCEPTION_LINE.match(line.strip()) or ":" in line:
                return _traceback_error(text[position:], line.strip())[:300]
    lines = text.splitlines()
    for line in reversed(lines[-400:]):
        stripped = line.rstrip()
        for pattern in _ERROR_LINES:
            if match := pattern.match(stripped):
                return match.group(1).strip()[:300]
    for line in reversed(lines[-400:]):
        if match := _NAMED_ERROR.search(line):
            return match.group(0).strip()[:300]
    return None


def looks_like_tool_output(text: str) -> bool:
    """A "user" message that is really a tool's answer (mini-swe-agent, SWE-agent observations)."""
    head = text[:400].lstrip()
    return head.startswith(("<returncode>", "<output>", "Observation:", "OBSERVATION:", "<tool_output>")) or (
        "<returncode>" in head and "</returncode>" in text[:2000]
    )


# -- gists: one line that says what a change or a command did -------------------------------------
_READ_ONLY = re.compile(
    r"^\s*(?:cd \S+ &&\s*)?(?:cat|head|tail|less|more|ls|ll|tree|find|grep|egrep|rg|ag|sed -n|awk|wc|pwd|echo|printf|"
    r"git (?:status|diff|log|show|branch|blame|grep)|which|type|file|stat|du|df|nl|open|find_file|search_file|"
    r"search_dir|goto|scroll_up|scroll_down|view|system_profiler|env|printenv|whoami|date)\b"
)
_NOISE_LINE = re.compile(
    r"^\s*(?:</?(?:output|returncode|warning|output_head|output_tail)>.*|bash-\$|\(Open file:.*\)|"
    r"\(Current directory:.*\)|\[File: .*\]|Wall time:.*|Chunk ID:.*|Output:|Command: .*|Process exited with.*|"
    r"Exit code:.*|Original token count:.*|Total output lines:.*|[-=_~*#]{3,}\s*)$"
)


def is_read_only(command: str) -> bool:
    """A command that only looks (cat, grep, ls, git diff): it changes nothing worth a line."""
    return bool(_READ_ONLY.match(command)) and not re.search(r"(?<![<>0-9&-])>{1,2}\s*[\w./]", command)


def output_gist(output: str) -> str:
    """The last line of an output that says something (not a prompt, tag or separator)."""
    tail = output[-4000:].splitlines()
    for line in reversed(tail):
        text = line.strip()
        if text and not _NOISE_LINE.match(text) and len(text) > 2:
            return " ".join(text.split())[:160]
    return ""


def edit_gist(old: str, new: str) -> str:
    """What an old → new replacement adds, as the first changed lines."""
    import difflib

    added = [
        line[1:].strip()
        for line in difflib.unified_diff(old[:20_000].splitlines(), new[:20_000].splitlines(), lineterm="", n=0)
        if line.startswith("+") and not line.startswith("+++") and len(line.strip()) > 3
    ]
    return " ⏎ ".join(" ".join(a.split()) for a in added[:2])[:160]


def change_gist(text: str) -> str:
    """The first lines a change adds: `+` lines of a diff or patch, or the head of new content."""
    added = []
    for line in text[:20_000].splitlines():
        if line.startswith("+") and not line.startswith("+++"):
            body = line[1:].strip()
            if len(body) > 3 and body not in ("{", "}", "});", ")"):
                added.append(body)
        if len(added) >= 2:
            break
    if not added:
        lines = [ln.strip() for ln in text[:4000].splitlines()[1:] if ln.strip() and not ln.startswith("-")]
        added = lines[:2]
    return " ⏎ ".join(" ".join(a.split()) for a in added)[:160]


_COMMIT_M = re.compile(r"""\bgit\b[^;&|]*\bcommit\b[^;&|]*?-\w*m\s*(?:"((?:[^"\\]|\\.)+)"|'([^']+)')""")
_COMMIT_HEREDOC = re.compile(r"\bgit\b.*\bcommit\b.*?<<-?\s*'?(\w+)'?\s*(?:⏎|\n)(.*?)(?:⏎|\n)\s*\1\b", re.S)


def commit_message(command: str) -> str | None:
    """The message of a `git commit -m …` (or heredoc) command: the agent's summary of a change."""
    if match := _COMMIT_HEREDOC.search(command):
        lines = [line.strip() for line in match.group(2).replace(" ⏎ ", "\n").splitlines() if line.strip()]
        return " ".join(lines[:3])[:300] if lines else None
    if match := _COMMIT_M.search(command):
        text = match.group(1) or match.group(2) or ""
        text = text.replace('\\"', '"').replace("\\n", " ")
        return " ".join(text.split())[:300] or None
    return None
