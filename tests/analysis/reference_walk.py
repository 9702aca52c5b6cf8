"""The extractor as it was before queries: every node visited in Python, in pre-order.

Kept as the oracle for `handoff.analysis.extract`, which must produce the same facts from a query
that visits the tree in C. Same rules (`NodeRules`), different traversal; about 4x slower.
"""

from __future__ import annotations

from tree_sitter import Node, Tree

from handoff.analysis.extract import FileFacts
from handoff.analysis.rules import IDENTIFIERS, NodeRules


def reference_extract(language: str, tree: Tree, source: bytes) -> FileFacts:
    text_lines = source.decode("utf-8", "replace").splitlines()
    rules = NodeRules(language, source, text_lines)
    _walk(rules, tree.root_node)
    total = len(text_lines)
    blank = sum(1 for line in text_lines if not line.strip())
    comment = min(len(rules.comment_rows), total - blank)
    return FileFacts(
        language=language,
        lines={"total": total, "code": max(total - blank - comment, 0), "comment": comment, "blank": blank},
        syntax_errors=rules.errors,
        error_count=rules.error_count,
        symbols=rules.symbols,
        imports=rules.imports,
        entry_point=rules.entry_point,
        package=rules.package,
        references=rules.references,
    )


def _walk(rules: NodeRules, root: Node) -> None:
    # (node, index of the enclosing symbol or -1, qualified name of the enclosing symbol)
    stack: list[tuple[Node, int, str]] = [(root, -1, "")]
    while stack:
        node, parent, qualifier = stack.pop()
        kind = node.type
        if node.is_error or node.is_missing:
            rules.syntax_error(node)
        if "comment" in kind:
            rules.comment_rows.update(range(node.start_point.row, node.end_point.row + 1))
            continue
        if kind in IDENTIFIERS and node.child_count == 0:
            name = rules.text(node, 64)
            if name:
                rules.references[name] += 1
        parent, qualifier = rules.visit(node, parent, qualifier)
        stack.extend((child, parent, qualifier) for child in reversed(node.children))
