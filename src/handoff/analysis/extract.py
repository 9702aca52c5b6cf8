"""The facts of one parse tree: syntax errors, line counts, symbols, imports, entry-point signals.

One query per file (`queries.py`) finds, in C, the identifiers, the comments and the candidate
nodes; Python then looks only at those. The candidates are replayed in document pre-order through
`NodeRules.visit`, with a stack of the enclosing symbols, which is exactly what a full walk of the
tree would have shown the rules (tests/analysis/reference_walk.py is that walk; a test holds both to
the same output). Syntax errors come from the subtrees that report one (`_flagged`).

Every list is capped by the rules, so one odd file cannot make the result unbounded.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tree_sitter import Node, QueryCursor, Tree

from handoff.analysis.queries import query_for
from handoff.analysis.rules import NodeRules

REFERENCE_CHARS = 64
_CHECK_EVERY = 4096  # nodes between deadline checks


@dataclass(slots=True)
class FileFacts:
    language: str
    lines: dict[str, int]
    syntax_errors: list[dict[str, Any]]
    error_count: int
    symbols: list[dict[str, Any]]
    imports: list[dict[str, Any]]
    entry_point: bool
    package: str | None = None  # Go package / Java package / C# namespace, for local resolution
    references: Counter[str] = field(default_factory=Counter)


class WalkTimeout(Exception):
    """The extraction ran past its deadline."""


def extract(
    language: str,
    tree: Tree,
    source: bytes,
    *,
    text: str | None = None,
    deadline: float | None = None,
    references: bool = True,
) -> FileFacts:
    """`text` is `source` decoded, when the caller has it already. Without `references` (only the
    central-symbol ranking needs them) the identifiers are not even captured."""
    lines = (source.decode("utf-8", "replace") if text is None else text).splitlines()
    rules = NodeRules(language, source, lines)
    root = tree.root_node
    captures = QueryCursor(query_for(language, source, references=references)).captures(root)
    _check(deadline)
    # A walk would not enter comments; a query does. That changes nothing here: the only comments
    # with children (Rust's doc comments) hold comment parts, none of the nodes captured below.
    for node in captures.get("comment", []):
        first, last = node.start_point.row, node.end_point.row
        if first == last:
            rules.comment_rows.add(first)
        else:
            rules.comment_rows.update(range(first, last + 1))
    rules.references = _references(source, captures.get("ref", []))
    if root.has_error:
        for node in _preorder(_flagged(root, deadline), deadline):
            rules.syntax_error(node)
    _structure(rules, captures.get("node", []), deadline)
    total = len(lines)
    blank = sum(1 for line in lines if not line.strip())
    comments = min(len(rules.comment_rows), total - blank)
    return FileFacts(
        language=language,
        lines={"total": total, "code": max(total - blank - comments, 0), "comment": comments, "blank": blank},
        syntax_errors=rules.errors,
        error_count=rules.error_count,
        symbols=rules.symbols,
        imports=rules.imports,
        entry_point=rules.entry_point,
        package=rules.package,
        references=rules.references,
    )


def _check(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise WalkTimeout


def _references(source: bytes, identifiers: list[Node]) -> Counter[str]:
    """Identifier leaves counted by their first 64 characters (a named `identifier` with children,
    such as a contextual keyword in C#, is not a leaf and does not count)."""
    # Counted by bytes first: a few distinct names, tens of thousands of uses.
    raw = Counter([source[start:end] for start, end in [n.byte_range for n in identifiers if n.child_count == 0]])
    raw.pop(b"", None)  # MISSING identifiers
    if all(len(chunk) <= REFERENCE_CHARS for chunk in raw):
        # No name is cut short, so (in valid UTF-8) no two names become one: decode them as they are.
        decoded = Counter({chunk.decode("utf-8", "replace"): count for chunk, count in raw.items()})
        if len(decoded) == len(raw):
            return decoded
    names: Counter[str] = Counter()
    for chunk, count in raw.items():
        names[chunk.decode("utf-8", "replace")[:REFERENCE_CHARS]] += count
    return names


def _flagged(root: Node, deadline: float | None) -> list[Node]:
    """ERROR and MISSING nodes, found by entering only the subtrees that report an error.

    Not by a query: `(MISSING)` misses a MISSING node that is the first child of an ERROR. And a
    one-character ERROR leaf does not report `has_error` itself (its parent does), hence `is_error`.
    """
    found: list[Node] = []
    stack = [root]
    visited = 0
    while stack:
        node = stack.pop()
        visited += 1
        if visited % _CHECK_EVERY == 0:
            _check(deadline)
        if node.is_error or node.is_missing:
            found.append(node)
        if "comment" not in node.type:
            stack.extend(child for child in node.children if child.has_error or child.is_error)
    return found


def _structure(rules: NodeRules, nodes: list[Node], deadline: float | None) -> None:
    # (node, symbol index, qualified name) of the symbols enclosing the current node, outermost first
    enclosing: list[tuple[Node, int, str]] = []
    for position, node in enumerate(_preorder(nodes, deadline)):
        if position % _CHECK_EVERY == _CHECK_EVERY - 1:
            _check(deadline)
        while enclosing and not _is_ancestor(enclosing[-1][0], node, deadline):
            enclosing.pop()
        parent, qualifier = (enclosing[-1][1], enclosing[-1][2]) if enclosing else (-1, "")
        inner = rules.visit(node, parent, qualifier)
        if inner[0] != parent:
            enclosing.append((node, *inner))


def _preorder(nodes: list[Node], deadline: float | None) -> list[Node]:
    """The nodes in document pre-order.

    By start byte, then the outer node first: the longer one, or with the same range (a node and
    its only child) the one with more descendants. Only an empty node (broken code: a MISSING
    token) is placed wrong by that: it sorts after every node starting where it is, but in the
    tree it comes right after those of them that are its ancestors.
    """
    ordered = sorted(nodes, key=lambda n: (n.start_byte, -n.end_byte, -n.descendant_count))
    if all(n.start_byte != n.end_byte for n in ordered):
        return ordered
    result: list[Node] = []
    group_start = 0  # where the nodes starting at the current byte begin in `result`
    for node in ordered:
        if not result or result[-1].start_byte != node.start_byte:
            group_start = len(result)
        if node.start_byte != node.end_byte:
            result.append(node)
            continue
        ancestors = _ancestors_starting_at(node, deadline)
        at = group_start
        for index in range(group_start, len(result)):
            if result[index] in ancestors:
                at = index + 1
        # Several empty nodes in one place (MISSING tokens side by side): the tree orders them.
        while at < len(result) and result[at].end_byte == node.start_byte and node not in ancestors:
            if _tree_path(node, deadline) < _tree_path(result[at], deadline):
                break
            at += 1
        result.insert(at, node)
    return result


def _tree_path(node: Node, deadline: float | None) -> list[int]:
    """Child indexes from the root down to `node`: sorts in pre-order."""
    path: list[int] = []
    child, parent = node, node.parent
    while parent is not None:
        path.append(next(i for i, sibling in enumerate(parent.children) if sibling == child))
        if len(path) % 256 == 0:
            _check(deadline)
        child, parent = parent, parent.parent
    path.reverse()
    return path


def _ancestors_starting_at(node: Node, deadline: float | None) -> set[Node]:
    found: set[Node] = set()
    parent = node.parent
    while parent is not None and parent.start_byte == node.start_byte:
        found.add(parent)
        if len(found) % 256 == 0:
            _check(deadline)
        parent = parent.parent
    return found


def _is_ancestor(candidate: Node, node: Node, deadline: float | None) -> bool:
    """Whether `candidate`, which precedes `node` in pre-order, encloses it."""
    start, end = candidate.byte_range
    node_start, node_end = node.byte_range
    if not (start <= node_start and node_end <= end):
        return False
    if node_start < node_end or start < node_start < end:
        # Non-empty nodes do not overlap their siblings; the same range means node and only child.
        return True
    # An empty node on the edge of the candidate: inside it or next to it. Ask the tree.
    parent = node.parent
    climbed = 0
    while parent is not None and start <= parent.start_byte and parent.end_byte <= end:
        if parent == candidate:
            return True
        climbed += 1
        if climbed % 256 == 0:
            _check(deadline)
        parent = parent.parent
    return False
