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
MAX_SCRIPT_CHARS = 50_000


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
    script: str | None = None  # the whole shell text when it spans lines (a heredoc, a patch)


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
# How harnesses word a failed tool call when an integration passes the text on and drops the flag:
# Claude Code's <tool_use_error> wrapper and its Edit refusals, Codex's exec failures, a leading
# "Error:". Only at the start of the output: the same words inside a file or a log mean nothing.
_FAILED_TOOL_TEXT = re.compile(
    r"\s*(?:<tool_use_error>|<error>|(?:Error|ERROR)(?:\[[\w-]+\])?: |String to replace not found in file"
    r"|File has not been read yet|exec_command failed|Tool execution failed|Command failed)"
)
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
        # "update_plan: {json}" or "Edit {json}": a call an integration wrote down as text.
        brace = content.find("{", match.end() - 1, match.end() + 80)
        if brace != -1 and content.rstrip().endswith("}") and metadata.get("phase") != "result":
            inline = _as_dict(content[brace:].strip())
            if inline is not None and use.input is None:
                use.input = inline
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
        use.script = script_of(use.input)
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
                use.command = unwrap_shell(match.group(1).strip())[:MAX_COMMAND_CHARS]
                break
    if use.exit_code is None and use.output:
        use.exit_code = exit_code_in(use.output)
    if use.exit_code is not None and use.failed is None:
        use.failed = use.exit_code != 0
    if use.failed is None and use.output and _FAILED_TOOL_TEXT.match(use.output):
        use.failed = True  # a harness's refusal sent as plain text, without an is_error flag
    if use.script is None and use.input is None and content.startswith("$ "):
        body = content[2:]
        first = body.split("\n", 1)[0]
        if "\n" in body.strip() and (metadata.get("phase") == "call" or "<<" in first or "Begin Patch" in body[:400]):
            # A command with its text: SWE-agent's `edit 3:5` … end_of_edit, a heredoc, a patch.
            use.script = body[:MAX_SCRIPT_CHARS]
            if metadata.get("phase") != "call" and use.output == content:
                use.output = None
    if use.command and not use.files and (path := first_str(metadata, "path", "file_path")):
        verb = use.command.split(maxsplit=1)[0].lower() if use.command.split() else ""
        action = EDITOR_VERBS.get(verb)
        if action:
            use.files = [(path, action)]
    if use.script and not use.files and has_patch(use.script):
        use.files = files_of_patch(use.script)
    if use.command and not use.files:
        use.files = files_of_command(use.script or use.command)
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


# The commands of editor tools that name the file in metadata (SWE-agent, aider-like shells).
EDITOR_VERBS = {
    "edit": "edited",
    "insert": "edited",
    "append": "edited",
    "str_replace": "edited",
    "replace": "edited",
    "create": "created",
    "write": "written",
    "undo_edit": "reverted",
    "open": "read",
    "view": "read",
    "goto": "read",
    "cat": "read",
}


def script_of(data: dict[str, Any]) -> str | None:
    """The whole shell text of a tool's input when `command_of` shortens it (several lines, very long)."""
    value = data.get("command", data.get("cmd"))
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = value[-1] if len(value) >= 2 else (value[0] if value else "")
    if isinstance(value, str) and ("\n" in value.strip() or len(value) > MAX_COMMAND_CHARS):
        return value[:MAX_SCRIPT_CHARS]
    return None


def has_patch(text: str) -> bool:
    return "*** Begin Patch" in text[:10_000] or ("\n+++ " in text[:20_000] and "\n--- " in text[:20_000])


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
    if not text.rstrip().endswith("```"):
        # Agents that act by writing a command end their turn with it; a block in the middle of an
        # explanation is an example or a plan, not something that ran.
        return []
    blocks = fenced_blocks(text)
    found = [body.strip() for language, body in blocks if language in _SHELL_LANGUAGES and body.strip()]
    if not found and blocks and not blocks[-1][0]:
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


_REDIRECT = re.compile(r"(?<![<>0-9&])>{1,2}\s*['\"]?((?:~|\.{1,2})?/?[\w.~-]+(?:/[\w.~-]+)*)")
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
HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)['\"]?[^\n]*\n(.*?)(?:\n\s*\1\s*(?:\n|$)|\Z)", re.S)


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
    # Redirects anywhere in the script, but not inside the text a heredoc feeds in.
    shell = HEREDOC.sub(lambda m: m.group(0).split("\n", 1)[0] + "\n", text) if "<<" in text else text
    found.extend(
        (m.group(1), "written")
        for m in _REDIRECT.finditer(shell)
        if not m.group(1).startswith(("/dev/", "&")) and ("/" in m.group(1) or "." in m.group(1).strip("."))
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


_SHELL_WRAPPER = re.compile(r"""^(?:/[\w/]+/)?(?:ba|z|da)?sh\s+-l?c\s+(["'])(.*)\1\s*$""", re.S)


def unwrap_shell(command: str) -> str:
    """`/bin/zsh -lc "pytest -q"` → `pytest -q`: the command a shell wrapper runs."""
    match = _SHELL_WRAPPER.match(command.strip())
    return match.group(2).strip() if match else command.strip()


_CD_PREFIX = re.compile(r"^cd\s+(?:\"[^\"]*\"|'[^']*'|\S+)\s*(?:&&|;)\s*")
_TRAILING_COMMENT = re.compile(r"\s+#\s[^'\"`]*$")


def command_label(command: str) -> str:
    """The part of a command a reader needs: no `cd <dir> &&` in front, no `# why` comment after.

    Agents prefix most commands with the directory they run in and Claude Code's transcripts carry
    the call's description as a comment; both cost a line's worth of tokens and say nothing new.
    """
    text = unwrap_shell(command).split("\n", 1)[0].strip()
    text = _TRAILING_COMMENT.sub("", text)
    stripped = _CD_PREFIX.sub("", text, count=1)
    return stripped or text


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
    r"Exit code:.*|Original token count:.*|Total output lines:.*|Process running with session ID \d+|[-=_~*#]{3,}\s*)$"
)


def is_noise_line(line: str) -> bool:
    """A line a harness adds around an output (prompts, tags, `Chunk ID:`, `Wall time:`), not the output."""
    return bool(_NOISE_LINE.match(line.strip()))


def is_read_only(command: str) -> bool:
    """A command that only looks (cat, grep, ls, git diff): it changes nothing worth a line."""
    return bool(_READ_ONLY.match(command)) and not re.search(r"(?<![<>0-9&-])>{1,2}\s*[\w./]", command)


def output_gist(output: str) -> str:
    """The last line of an output that says something (not a prompt, tag or separator).

    A `$ command` line is the command echoed back (how transcripts write a call): it says nothing
    the command does not, so an output that is only that has no gist.
    """
    tail = output[-4000:].splitlines()
    for line in reversed(tail):
        text = line.strip()
        if text and not _NOISE_LINE.match(text) and len(text) > 2 and not text.startswith("$ "):
            return " ".join(text.split())[:160]
    return ""
