"""The rules that fold one entry into a session's digest.

Explicit signals win (`metadata.kind`, `Decision:`/`TODO:` line markers, structured tool input),
then what the text itself says: user requests and constraints, salient prose, commands with their
exit status, test-runner verdicts, tracebacks, file actions, plans and to-do lists. Scans are
bounded, so a multi-MiB tool output costs the same as a page of it.
"""

from __future__ import annotations

import re
from typing import Any

from handoff.domain.activity import (
    TEST_COMMAND,
    call_label,
    record_error,
    record_run,
    set_test,
    step,
    touch_file,
)
from handoff.domain.changes import (
    change_gist,
    commit_message,
    commit_of_output,
    delegation_of,
    edit_gist,
    report_gist,
    script_change,
)
from handoff.domain.digest import (
    FIRST_REQUEST_CHARS,
    MAX_ANALYSES,
    MAX_ANALYSIS_FILES,
    MAX_ANALYSIS_SYMBOLS,
    MAX_COMMANDS,
    MAX_DELEGATED,
    MAX_PENDING_CALLS,
    MAX_RECENT_SALIENT,
    MAX_REQUESTS,
    MAX_TOOLS,
    MAX_TOP_SALIENT,
    REQUEST_CHARS,
    SNIPPET_CHARS,
    Digest,
    Item,
    Sentence,
)
from handoff.domain.failures import failure_line, last_error
from handoff.domain.models import ContextType
from handoff.domain.plans import (
    PlanItem,
    PlanUpdate,
    apply_plan,
    checklist,
    created_task_id,
    norm,
    plan_update_of,
    status_of,
)
from handoff.domain.prose import clip, is_low_information, score_sentence, sentences
from handoff.domain.testruns import parse_test_output
from handoff.domain.tooluse import (
    ToolUse,
    bash_blocks,
    exit_code_in,
    files_of_command,
    first_str,
    is_read_only,
    looks_like_tool_output,
    output_gist,
    read_tool_call,
    unwrap_shell,
)

_MARKERS: list[tuple[str, re.Pattern[str]]] = [
    ("decision", re.compile(r"^\s*(?:[-*]\s*)?(?:decision|decided)\s*:\s*(.+)$", re.I)),
    ("rejected", re.compile(r"^\s*(?:[-*]\s*)?(?:rejected|tried and rejected|won't do)\s*:\s*(.+)$", re.I)),
    ("task", re.compile(r"^\s*(?:[-*]\s*)?(?:todo|open task|next)\s*:\s*(.+)$", re.I)),
    ("task_done", re.compile(r"^\s*(?:[-*]\s*)?(?:done)\s*:\s*(.+)$", re.I)),
]
_EXPLICIT_KINDS = {"decision", "rejected", "task", "task_done", "request", "test_failure", "test_pass", "constraint"}
_TASK_TAGS = re.compile(
    r"<(pr_description|issue|issue_description|task|problem_statement|user_request|request)>\s*(.*?)\s*</\1>",
    re.S | re.I,
)
_IDE_REQUEST = re.compile(r"^#{1,4}\s*My request for [\w .-]{1,40}:\s*$", re.M | re.I)
_ISSUE_BLOCK = re.compile(r"\bISSUE:\s*\n(.*?)\n\s*INSTRUCTIONS:", re.S)
_INSTRUCTIONS = re.compile(
    r"^\s*(?:INSTRUCTIONS:|<instructions>|#{1,3}\s*(?:Task |General )?Instructions\b|#{1,3}\s*Recommended Workflow|"
    r"#{1,3}\s*Important Boundaries|<IMPORTANT>|<environment_details>)",
    re.M | re.I,
)
_TASK_CATEGORIES = frozenset({"constraint", "rejected"})
_INSTRUCTION_CATEGORIES = frozenset({"constraint"})
_EXPLICIT_SCORE = 6.0
_LASTING = frozenset({"constraint", "rejected"})
MAX_LASTING = 12
_USER_ROLES = {"user", "human"}
_INSTRUCTION_KINDS = frozenset({"instructions", "user_instructions", "agents_md", "developer_instructions"})
_SYSTEM_ROLES = {"system", "developer"}


def fold(
    digest: Digest, *, seq: int, context_type: ContextType, content: str, metadata: dict[str, Any], agent: str
) -> None:
    kind = metadata.get("kind")
    kind = kind if isinstance(kind, str) and kind in _EXPLICIT_KINDS else None
    if context_type is ContextType.MESSAGE:
        _message(digest, seq, content, metadata, agent, kind)
    elif context_type is ContextType.FILE:
        _file(digest, seq, content, metadata)
    elif context_type is ContextType.TOOL_CALL:
        _tool_call(digest, seq, content, metadata)
    else:
        _system(digest, seq, content, metadata)
    if kind is not None and kind != "request":
        _explicit(digest, kind, seq, content, agent)


# -- messages ------------------------------------------------------------------------------------
def _role(metadata: dict[str, Any], agent: str) -> str:
    role = metadata.get("role")
    if isinstance(role, str) and role.strip():
        return role.strip().lower()[:40]
    return "user" if agent.lower() in _USER_ROLES else ""


def _message(digest: Digest, seq: int, content: str, metadata: dict[str, Any], agent: str, kind: str | None) -> None:
    role = _role(metadata, agent)
    if role in _USER_ROLES and looks_like_tool_output(content):
        # mini-swe-agent / SWE-agent: the environment answers in the "user" turn.
        _tool_output(digest, seq, ToolUse(output=content, exit_code=exit_code_in(content)), None)
        return
    if role in ("tool", "function", "ipython", "observation"):
        _tool_call(digest, seq, content, metadata)
        return
    if role in _SYSTEM_ROLES:
        _system(digest, seq, content, metadata)
        return
    is_user = role in _USER_ROLES or kind == "request"
    first = False
    if is_user:
        _close_turn(digest)
        first = _user_message(digest, seq, content, agent)
    else:
        for block in bash_blocks(content)[-1:]:
            # An agent that runs commands by writing them (mini-swe-agent): the next output is theirs.
            script = block if "\n" in block.strip() else None
            _command(
                digest,
                seq,
                ToolUse(tool="bash", command=_one_line(block), files=files_of_command(block), script=script),
            )
    plan = checklist(content)
    if plan:
        apply_plan(digest, seq, PlanUpdate(replace=plan))
    if not first:
        said = _request_part(content) if is_user else content
        _prose(digest, seq, said, "user" if is_user else role or "assistant")
    if not is_user:
        digest.last_reply = seq
    _markers(digest, seq, content, agent)


def split_task(text: str) -> tuple[str, str]:
    """The task in a first request, and the harness's instructions wrapped around it (if any)."""
    head = text[:200_000]
    tagged = _TASK_TAGS.search(head)
    if tagged:
        return tagged.group(2), head[: tagged.start()] + "\n" + head[tagged.end() :]
    issue = _ISSUE_BLOCK.search(head)
    if issue:
        return issue.group(1), head[: issue.start(1)] + "\n" + head[issue.end(1) :]
    asked = _IDE_REQUEST.search(head)
    if asked and asked.end() < len(head.rstrip()):
        # An IDE extension wraps the request in the editor's context (active file, selection, tabs).
        return head[asked.end() :], head[: asked.start()]
    if len(head) > 2_500 and (marker := _INSTRUCTIONS.search(head)) and marker.start() > 200:
        return head[: marker.start()], head[marker.start() :]
    return head, ""


def _request_part(text: str) -> str:
    """A later user message without the editor context an IDE extension wraps around it."""
    asked = _IDE_REQUEST.search(text[:200_000])
    return text[asked.end() :].strip() if asked and asked.end() < len(text.rstrip()) else text


def _close_turn(digest: Digest) -> None:
    """The agent's last message before the user speaks again is usually its summary of the turn."""
    if digest.last_reply:
        for sentence in (*digest.top, *digest.recent):
            if sentence.seq == digest.last_reply and sentence.role != "user":
                sentence.score = round(sentence.score + 1.0, 2)
        digest.last_reply = 0


def _user_message(digest: Digest, seq: int, content: str, agent: str) -> bool:
    """Record a user message; True when it was the first request (its prose is handled apart)."""
    text = content.strip()
    if digest.first_request is None and is_low_information(text):
        # "hi", "model_reasoning_effort=high": not yet the task.
        digest.last_user = Item(seq, clip(_tidy(text), REQUEST_CHARS), agent)
        return True
    if digest.first_request is None:
        task, instructions = split_task(text)
        digest.first_request = Item(seq, clip(_tidy(task), FIRST_REQUEST_CHARS), agent)
        step(digest, seq, "ask", "", " ".join(task.split()))
        digest.last_request = digest.first_request
        digest.last_user = digest.first_request
        # The task itself is shown whole; only its constraints and vetoes are worth a line of their
        # own. A harness's instructions count for their constraints alone.
        _prose(digest, seq, task, "user", only=_TASK_CATEGORIES)
        if instructions.strip():
            _prose(digest, seq, instructions, "instructions", only=_INSTRUCTION_CATEGORIES)
        return True
    text = _request_part(text)
    item = Item(seq, clip(_tidy(text), REQUEST_CHARS), agent)
    digest.last_user = item
    if not text or is_low_information(text):
        return False
    digest.requests.append(item)
    step(digest, seq, "ask", "", " ".join(text.split()))
    del digest.requests[:-MAX_REQUESTS]
    digest.last_request = item
    return False


def _tidy(text: str) -> str:
    """Whitespace folded per line, blank runs collapsed: prose keeps its line breaks."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def _prose(digest: Digest, seq: int, content: str, role: str, only: frozenset[str] | None = None) -> None:
    seen = {s.text for s in digest.recent}
    for text in sentences(content):
        found = score_sentence(text, role, only)
        if found is None or found.text in seen:
            continue
        seen.add(found.text)
        _keep(digest, Sentence(seq, found.text, found.category, found.score, role))


def _keep(digest: Digest, sentence: Sentence) -> None:
    if sentence.score >= 1.5:
        digest.recent.append(sentence)
        del digest.recent[:-MAX_RECENT_SALIENT]
    if any(s.text == sentence.text for s in digest.top):
        return
    digest.top.append(sentence)
    if len(digest.top) > MAX_TOP_SALIENT:
        # Drop the weakest; among equals the oldest, since later findings supersede earlier ones. The
        # user's constraints and the rejected paths are few and stay true all session: they go last.
        lasting = sorted(
            (i for i, t in enumerate(digest.top) if t.category in _LASTING and t.role != "assistant"),
            key=lambda i: -digest.top[i].score,
        )[:MAX_LASTING]
        weakest = min(range(len(digest.top)), key=lambda i: (i in lasting, digest.top[i].score, digest.top[i].seq))
        del digest.top[weakest]


def _markers(digest: Digest, seq: int, content: str, agent: str) -> None:
    if ":" not in content:
        return
    for line in content[:20_000].splitlines():
        for kind, pattern in _MARKERS:
            match = pattern.match(line)
            if match:
                _explicit(digest, kind, seq, match.group(1), agent)
                break


def _explicit(digest: Digest, kind: str, seq: int, text: str, agent: str) -> None:
    text = clip(" ".join(text.split()), SNIPPET_CHARS)
    if not text:
        return
    if kind in ("decision", "rejected", "constraint"):
        digest.top = [s for s in digest.top if s.text != text]
        _keep(digest, Sentence(seq, text, kind, _EXPLICIT_SCORE, "marker"))
    elif kind in ("task", "task_done"):
        apply_plan(digest, seq, PlanUpdate(upsert=[PlanItem(text, "pending" if kind == "task" else "completed")]))
    elif kind in ("test_failure", "test_pass"):
        set_test(digest, text, "failed" if kind == "test_failure" else "passed", seq, "")


# -- tool calls ----------------------------------------------------------------------------------
def _tool_call(digest: Digest, seq: int, content: str, metadata: dict[str, Any]) -> None:
    use = read_tool_call(content, metadata)
    name = use.tool or ("bash" if use.command else "(tool)")
    if use.input is not None and use.output is None and (task := delegation_of(use.tool or "", use.input)):
        _delegate(digest, seq, use.call_id or "", *task)
    if use.input is not None or use.command:
        _command(digest, seq, use)  # touches the files it names
        plan = plan_update_of(use.tool or "", use.input or {})
        if plan is not None:
            apply_plan(digest, seq, plan)
    else:
        for path, action in use.files:
            touch_file(digest, path, action, seq, _input_gist(use, path) if action not in ("read", "ran") else "")
    if use.output is not None:
        _tool_output(digest, seq, use, name)
    else:
        _count_tool(digest, name, seq, failed=bool(use.failed))


def _command(digest: Digest, seq: int, use: ToolUse) -> None:
    record = {"q": seq, "tool": (use.tool or "bash")[:60], "cmd": use.command or "", "exit": use.exit_code}
    changes = [(path, action) for path, action in use.files if action not in ("read", "ran")]
    if changes:
        record["path"], record["act"] = changes[0][0][:300], changes[0][1]
    if use.call_id:
        digest.pending[use.call_id] = record
        while len(digest.pending) > MAX_PENDING_CALLS:
            digest.pending.pop(next(iter(digest.pending)))
    digest.last_command = record
    if use.command and is_read_only(use.command):
        record["ro"] = True
    text = use.script or use.command or ""
    message = commit_message(text) if "commit" in text else None
    if message:
        # The agent's own summary of a change: as good as a decision it wrote down.
        _keep(digest, Sentence(seq, clip(f"Committed: {message}", SNIPPET_CHARS), "decision", 4.0, "commit"))
    for path, action in use.files:
        gist = ""
        if action not in ("read", "ran"):
            gist = _input_gist(use, path) or use.command or ""
        touch_file(digest, path, action, seq, gist[:160])
    if use.command:
        digest.commands.append(record)
        del digest.commands[:-MAX_COMMANDS]


def _tool_output(digest: Digest, seq: int, use: ToolUse, name: str | None) -> None:
    output = use.output or ""
    call = digest.pending.pop(use.call_id, None) if use.call_id else None
    if call is None and not use.input and digest.last_command and seq - int(digest.last_command["q"]) <= 3:
        call = digest.last_command
        if use.command and unwrap_shell(str(call.get("cmd", ""))) != unwrap_shell(use.command):
            call = None  # the output names another command: not this call's answer
    if call is None and use.command:
        call = {"q": seq, "tool": (use.tool or "bash")[:60], "cmd": use.command, "exit": use.exit_code}
        digest.commands.append(call)
        del digest.commands[:-MAX_COMMANDS]
    tool = name or (call or {}).get("tool") or "(tool)"
    if call is not None:
        call["exit"] = use.exit_code if use.exit_code is not None else (1 if use.failed else call.get("exit"))
        call["out"] = seq
        gist = output_gist(output)
        if gist:
            call["gist"] = gist
        digest.last_command = None if call is digest.last_command else digest.last_command
        _update_command(digest, call)
        if tool == "TaskCreate" or (call.get("tool") == "TaskCreate"):
            created = created_task_id(output)
            if created:
                task_id, subject = created
                unnamed = [item for item in digest.plan if not item.get("id")]
                named = [item for item in unnamed if subject and norm(str(item.get("text", ""))) == norm(subject)]
                targets = named or unnamed[-1:]
                if targets:
                    targets[0]["id"] = task_id
    _count_tool(digest, tool, seq, failed=bool(use.failed))
    if use.call_id and (task := next((d for d in digest.delegated if d.get("id") == use.call_id), None)):
        # A subagent's report is prose an agent wrote: its findings count like the main agent's.
        task["done"], task["said"] = seq, report_gist(output)
        task["failed"] = bool(use.failed)
        _prose(digest, seq, output, "assistant")
    command = str((call or {}).get("cmd", "")) or (use.command or "")
    if "commit" in command and (committed := commit_of_output(output)):
        sha, subject = committed
        # git's own line names the commit; it replaces the message read off the command.
        digest.top = [t for t in digest.top if not (t.role == "commit" and subject[:40] in t.text)]
        digest.recent = [t for t in digest.recent if not (t.role == "commit" and subject[:40] in t.text)]
        _keep(digest, Sentence(seq, clip(f"Committed {sha}: {subject}", SNIPPET_CHARS), "decision", 4.0, "commit"))
        step(digest, seq, "commit", sha, f"{sha} {subject}")
    run = parse_test_output(output) if output else None
    if run is not None:
        record_run(digest, seq, run, command, use.exit_code)
    elif command and TEST_COMMAND.search(command):
        digest.test_command = {"q": seq, "cmd": command, "exit": use.exit_code}
    if use.failed and call is not None and call.get("path") and call.get("act"):
        # The edit the call asked for did not happen: say so on the file, or the reader assumes it did.
        touch_file(digest, str(call["path"]), "edit not applied", seq, counted=False)
    if use.failed or (run is not None and not run.green) or "Traceback (most recent call last)" in output[-200_000:]:
        error = last_error(output) or (failure_line(output) if use.failed else None)
        if error:
            record_error(digest, seq, error, command or call_label(call, tool))
    elif use.failed is False and command:
        # A command that now succeeds clears the error it used to raise.
        digest.errors = [e for e in digest.errors if e.get("cmd") != command]


def _delegate(digest: Digest, seq: int, call_id: str, what: str, ask: str) -> None:
    digest.delegated.append({"id": call_id[:80], "q": seq, "what": what, "ask": ask, "done": 0, "said": ""})
    if len(digest.delegated) > MAX_DELEGATED:
        finished = next((d for d in digest.delegated if d.get("done")), digest.delegated[0])
        digest.delegated.remove(finished)


def _input_gist(use: ToolUse, path: str = "") -> str:
    if use.script:
        return script_change(use.script, path)
    data = use.input or {}
    if isinstance(data.get("old_string"), str) and isinstance(data.get("new_string"), str):
        return edit_gist(data["old_string"], data["new_string"])
    for key in ("new_string", "content", "new_source", "patch", "input"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return change_gist(value) if key in ("patch", "input") else change_gist("x\n" + value)
    edits = data.get("edits")
    if isinstance(edits, list) and edits and isinstance(edits[0], dict):
        return change_gist("x\n" + str(edits[0].get("new_string", "")))
    return ""


def _update_command(digest: Digest, call: dict[str, Any]) -> None:
    for record in reversed(digest.commands):
        if record.get("q") == call.get("q") and record.get("cmd") == call.get("cmd"):
            record.update(call)
            return


def _count_tool(digest: Digest, name: str, seq: int, *, failed: bool) -> None:
    info = digest.tools.pop(name[:60], {"count": 0, "errors": 0})
    info["count"] = info.get("count", 0) + 1
    info["errors"] = info.get("errors", 0) + int(failed)
    info["last_seq"] = seq
    digest.tools[name[:60]] = info
    while len(digest.tools) > MAX_TOOLS:
        digest.tools.pop(next(iter(digest.tools)))


# -- files, system entries ------------------------------------------------------------------------
# A file entry's first line naming the file, with or without a verb: "edited src/app.py",
# "Created: docs/x.md", "File: a/b.ts". The path needs a slash or an extension to count.
_NAMED_FILE = re.compile(
    r"\s*(?:(created?|new file|added|add|edited|edit|modified|modify|updated|update|wrote|write|deleted|delete|"
    r"removed|remove|reverted|revert|file)\b:?\s+)?`?((?:[\w.-]+/)+[\w.-]+|[\w-]+\.\w{1,8})`?[ \t]*(?:\n|$)",
    re.I,
)
_FILE_VERBS = {
    "create": "created",
    "created": "created",
    "new": "created",
    "added": "created",
    "add": "created",
    "edit": "edited",
    "edited": "edited",
    "modified": "edited",
    "modify": "edited",
    "updated": "edited",
    "update": "edited",
    "wrote": "edited",
    "write": "edited",
    "delete": "deleted",
    "deleted": "deleted",
    "removed": "deleted",
    "remove": "deleted",
    "reverted": "reverted",
    "revert": "reverted",
}


def _file(digest: Digest, seq: int, content: str, metadata: dict[str, Any]) -> None:
    summary = metadata.get("summary")
    if metadata.get("kind") == "analysis" and isinstance(summary, dict):
        _absorb_analysis(digest, seq, metadata, summary)
        return
    path = first_str(metadata, "path", "file_path", "file", "filename")
    action = first_str(metadata, "action", "operation", "change_type") or "touched"
    if path is None:
        from handoff.domain.tooluse import files_of_patch

        found = files_of_patch(content) if ("+++ " in content[:20_000] or "*** " in content[:2000]) else []
        for found_path, found_action in found:
            touch_file(digest, found_path, found_action, seq, change_gist(content))
        if found:
            return
        named = _NAMED_FILE.match(content)
        if named:  # "created src/app.py" then the text: how a plain integration words a file entry
            verb, path = (named.group(1) or "").lower(), named.group(2)
            action = _FILE_VERBS.get(verb.split()[0] if verb else "", action)
            content = content[named.end() :]
        else:
            path = "(unnamed file)"
    touch_file(digest, path, action, seq, change_gist(content) if content.strip() else "")


def _system(digest: Digest, seq: int, content: str, metadata: dict[str, Any]) -> None:
    _markers(digest, seq, content, "")
    run = parse_test_output(content) if content else None
    if run is not None:
        record_run(digest, seq, run, "", None)
    plan = checklist(content)
    if plan:
        apply_plan(digest, seq, PlanUpdate(replace=plan))
    if metadata.get("kind") in ("summary", "compaction", "compact_summary") or metadata.get("compaction"):
        _prose(digest, seq, content, "assistant")
    elif metadata.get("kind") in _INSTRUCTION_KINDS or str(metadata.get("role", "")).lower() in _SYSTEM_ROLES:
        # Standing instructions (AGENTS.md, a harness's system prompt): their rules are constraints.
        _prose(digest, seq, content, "instructions", only=_INSTRUCTION_CATEGORIES)


def _absorb_analysis(digest: Digest, seq: int, metadata: dict[str, Any], summary: dict[str, Any]) -> None:
    """An analyze_codebase result: which files were analysed and their key symbols."""

    def strings(key: str, cap: int) -> list[str]:
        value = summary.get(key)
        return [str(v)[:SNIPPET_CHARS] for v in value[:cap]] if isinstance(value, list) else []

    languages = summary.get("languages")
    count = summary.get("file_count")
    errors = summary.get("error_count")
    digest.analyses.append(
        {
            "seq": seq,
            "analysis_type": str(metadata.get("analysis_type", "analysis"))[:40],
            "files": strings("files", MAX_ANALYSIS_FILES),
            "file_count": count if isinstance(count, int) else len(strings("files", 1000)),
            "languages": {str(k)[:40]: v for k, v in languages.items() if isinstance(v, int)}
            if isinstance(languages, dict)
            else {},
            "top_symbols": strings("top_symbols", MAX_ANALYSIS_SYMBOLS),
            "error_count": errors if isinstance(errors, int) else 0,
        }
    )
    del digest.analyses[:-MAX_ANALYSES]


def _one_line(command: str) -> str:
    lines = [line.strip() for line in command.strip().splitlines() if line.strip()]
    text = " ⏎ ".join(lines[:3]) + (" …" if len(lines) > 3 else "")
    return text[:300]


__all__ = ["fold", "status_of"]
