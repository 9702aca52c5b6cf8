"""The agent's own plan and to-do list, in the shapes agents really write them.

Claude Code keeps a checklist with TodoWrite (the whole list each call) or TaskCreate/TaskUpdate
(one item at a time) and presents plans through ExitPlanMode; Codex keeps one with update_plan;
many agents write Markdown checklists (`- [ ] …`). Each item's latest state is what matters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from handoff.domain.digest import MAX_PLAN_ITEMS, Digest, Item

MAX_ITEM_CHARS = 240
MAX_PLAN_CHARS = 4_000


@dataclass(frozen=True, slots=True)
class PlanItem:
    text: str
    status: str  # pending | in_progress | completed | cancelled
    item_id: str = ""


@dataclass(frozen=True, slots=True)
class PlanUpdate:
    """What one tool call or message says about the plan."""

    replace: list[PlanItem] | None = None  # the whole list, as of now
    upsert: list[PlanItem] | None = None  # items to add or change by id/text
    plan_text: str | None = None  # an approved/proposed plan document
    explanation: str | None = None


_STATUS = {
    "pending": "pending",
    "todo": "pending",
    "not_started": "pending",
    "open": "pending",
    "in_progress": "in_progress",
    "in-progress": "in_progress",
    "active": "in_progress",
    "doing": "in_progress",
    "completed": "completed",
    "complete": "completed",
    "done": "completed",
    "finished": "completed",
    "cancelled": "cancelled",
    "canceled": "cancelled",
    "deleted": "cancelled",
    "skipped": "cancelled",
}
_CHECKBOX = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\[([ xX~/-])\]\s+(.+?)\s*$")


def status_of(value: Any) -> str:
    return _STATUS.get(str(value or "pending").strip().lower(), "pending")


def _text(value: Any) -> str:
    text = " ".join(str(value or "").split())
    return text if len(text) <= MAX_ITEM_CHARS else text[: MAX_ITEM_CHARS - 1] + "…"


def plan_update_of(tool: str, data: dict[str, Any]) -> PlanUpdate | None:
    """Read a plan-keeping tool call's input (by tool name, or by shape when the name is unknown)."""
    name = tool.lower()
    todos = data.get("todos")
    if isinstance(todos, list) and (name in ("", "todowrite", "todo_write", "todos") or todos):
        items = [
            PlanItem(
                _text(t.get("content") or t.get("text") or t.get("title") or t.get("activeForm")),
                status_of(t.get("status")),
                str(t.get("id", ""))[:40],
            )
            for t in todos
            if isinstance(t, dict)
        ]
        return PlanUpdate(replace=[i for i in items if i.text])
    plan = data.get("plan")
    if isinstance(plan, list):
        items = [
            PlanItem(_text(p.get("step") or p.get("content") or p.get("text")), status_of(p.get("status")))
            for p in plan
            if isinstance(p, dict)
        ]
        explanation = data.get("explanation")
        return PlanUpdate(
            replace=[i for i in items if i.text],
            explanation=_text(explanation) if isinstance(explanation, str) and explanation.strip() else None,
        )
    if isinstance(plan, str) and plan.strip() and (name in ("", "exitplanmode", "exit_plan_mode") or len(plan) > 40):
        return PlanUpdate(plan_text=plan.strip()[:MAX_PLAN_CHARS], replace=checklist(plan))
    if name in ("taskcreate", "task_create") or ("subject" in data and "description" in data and name != "task"):
        subject = _text(data.get("subject") or data.get("description"))
        return PlanUpdate(upsert=[PlanItem(subject, "pending")]) if subject else None
    if name in ("taskupdate", "task_update") or ("taskId" in data and "status" in data):
        task_id = str(data.get("taskId", data.get("task_id", data.get("id", ""))))[:40]
        subject = _text(data.get("subject")) if data.get("subject") else ""
        if not task_id and not subject:
            return None
        return PlanUpdate(upsert=[PlanItem(subject, status_of(data.get("status")), task_id)])
    return None


def checklist(text: str) -> list[PlanItem] | None:
    """A Markdown checklist's items, when the text holds at least two of them."""
    items = []
    for line in text[:20_000].splitlines():
        match = _CHECKBOX.match(line)
        if match:
            mark = match.group(1)
            status = "completed" if mark in "xX" else "in_progress" if mark in "~/" else "pending"
            if mark == "-":
                status = "cancelled"
            items.append(PlanItem(_text(match.group(2)), status))
    return items if len(items) >= 2 else None


_TASK_CREATED = re.compile(r"Task #(\w+) created(?: successfully)?(?::\s*(.+))?")


def created_task_id(output: str) -> tuple[str, str] | None:
    """Claude Code's answer to TaskCreate: the id later TaskUpdate calls use, and the subject it was given.

    Parallel TaskCreate calls are answered in any order, so the subject says which item got the id.
    """
    match = _TASK_CREATED.search(output[:2000])
    return (match.group(1), _text(match.group(2) or "")) if match else None


# -- keeping the digest's plan ----------------------------------------------------------------------
def apply_plan(digest: Digest, seq: int, update: PlanUpdate) -> None:
    if update.plan_text:
        digest.plan_text = Item(seq, update.plan_text, "")
    if update.explanation:
        digest.plan_note = update.explanation
    if update.replace is not None and update.replace:
        digest.plan = [{"id": i.item_id, "text": i.text, "status": i.status, "seq": seq} for i in update.replace]
    for item in update.upsert or []:
        existing = _find_plan_item(digest, item)
        if existing is not None:
            existing["status"] = item.status
            existing["seq"] = seq
            if item.text:
                existing["text"] = item.text
        elif item.text:
            item_id = item.item_id
            if not item_id and item.status == "pending":
                digest.tasks_created += 1
            digest.plan.append({"id": item_id, "text": item.text, "status": item.status, "seq": seq})
    if len(digest.plan) > MAX_PLAN_ITEMS:
        done = [p for p in digest.plan if p.get("status") not in ("pending", "in_progress")]
        while len(digest.plan) > MAX_PLAN_ITEMS and done:
            digest.plan.remove(done.pop(0))
        del digest.plan[:-MAX_PLAN_ITEMS]


def _find_plan_item(digest: Digest, item: PlanItem) -> dict[str, Any] | None:
    for existing in digest.plan:
        if item.item_id and existing.get("id") == item.item_id:
            return existing
    wanted = norm(item.text)
    if wanted:
        for existing in digest.plan:
            if norm(str(existing.get("text", ""))) == wanted:
                return existing
    return None


def norm(text: str) -> str:
    return " ".join(text.lower().rstrip(".…").split())
