"""One tree-sitter query per language, compiled once, that finds every node the rules care about.

Walking a tree node by node in Python costs about a microsecond a node; a query cursor visits the
nodes in C and hands back only the few we need. Each query has three captures:

  @ref      identifier leaves (references: counted by name for the central-symbol ranking)
  @comment  comment nodes (comment line counts, doc comments)
  @node     candidates for `NodeRules.visit`: definitions, imports, packages, entry-point shapes

`@node` may over-capture: `visit` re-checks every node with the same rules the walker used, so a
pattern only has to be a superset of the nodes that matter. Node types a grammar lacks are left
out of its query (no node can have them, so nothing is lost).

Some candidates are common and rarely matter (every `if` in Python, every call in JavaScript), so
their patterns sit in optional groups switched on only when the source contains the bytes the rule
needs (`__main__`, `require`, ...). A file without them cannot produce that import or entry point,
so skipping the group changes nothing but the time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from tree_sitter import Language, Query

from handoff.analysis.languages import GRAMMARS, grammar
from handoff.analysis.rules import DEFINITIONS, IDENTIFIERS, JS_FAMILY, JS_FUNCTION_VALUES

LANGUAGES = tuple(GRAMMARS)


@dataclass(frozen=True, slots=True)
class Group:
    """Optional @node patterns, and the test on the source that makes them worth running."""

    patterns: tuple[str, ...]
    needed: Callable[[bytes], bool]


# Always-on @node patterns besides the definition types (imports, packages, prototypes).
_NODES: dict[str, tuple[str, ...]] = {
    "python": ("(import_statement)", "(import_from_statement)"),
    "javascript": ("(import_statement source: (_))", "(export_statement source: (_))"),
    "go": ("(import_spec)", "(package_clause)"),
    "rust": ("(use_declaration)", "(extern_crate_declaration)"),
    "java": ("(import_declaration)", "(package_declaration)"),
    "c": (
        "(preproc_include)",
        "(declaration declarator: (function_declarator))",
        "(field_declaration declarator: (function_declarator))",
    ),
    "csharp": ("(using_directive)",),
    "ruby": (),
}
_NODES["typescript"] = _NODES["tsx"] = _NODES["javascript"]
_NODES["cpp"] = _NODES["c"]

_GROUPS: dict[str, dict[str, Group]] = {
    "python": {
        # `if __name__ == "__main__":`
        "entry": Group(("(if_statement)",), lambda s: b"__name__" in s and b"__main__" in s),
    },
    "javascript": {
        # require("x") and import("x")
        "calls": Group(
            ("(call_expression function: [(identifier) (import)])",), lambda s: b"require" in s or b"import" in s
        ),
        # `require.main === module`
        "entry": Group(("(binary_expression)",), lambda s: b"require.main" in s and b"module" in s),
    },
    "ruby": {
        "calls": Group(("(call method: (identifier))",), lambda s: b"require" in s or b"load" in s),
        # `if __FILE__ == $0`
        "entry": Group(("(if)",), lambda s: b"__FILE__" in s),
    },
}
_GROUPS["typescript"] = _GROUPS["tsx"] = _GROUPS["javascript"]


def query_for(language: str, source: bytes, *, references: bool = True) -> Query:
    """The compiled query for `language`, with the optional groups this source needs."""
    groups = tuple(name for name, group in _GROUPS.get(language, {}).items() if group.needed(source))
    return _compiled(language, groups, references)


def warm(language: str) -> None:
    """Load the grammar and compile the usual query variants ahead of the first file."""
    _compiled(language, (), True)
    _compiled(language, tuple(_GROUPS.get(language, {})), True)


@cache
def _compiled(language: str, groups: tuple[str, ...], references: bool) -> Query:
    return Query(grammar(language), query_source(language, groups, references=references))


def query_source(language: str, groups: tuple[str, ...] = (), *, references: bool = True) -> str:
    lang = grammar(language)
    refs = [f"({kind})" for kind in sorted(IDENTIFIERS) if _has(lang, kind)] if references else []
    comments = _comment_patterns(lang)
    nodes = [f"({kind})" for kind in DEFINITIONS[language] if _has(lang, kind)]
    if language in JS_FAMILY:
        values = " ".join(f"({kind})" for kind in JS_FUNCTION_VALUES if _has(lang, kind))
        nodes.append(f"(variable_declarator value: [{values}])")
    extra = list(_NODES[language])
    for name in groups:
        extra += _GROUPS[language][name].patterns
    nodes += [p for p in extra if _valid(lang, p)]
    parts = [f"[{' '.join(refs)}] @ref", f"[{' '.join(comments)}] @comment", f"[{' '.join(nodes)}] @node"]
    return "\n".join(part for part, items in zip(parts, (refs, comments, nodes), strict=True) if items)


def _has(lang: Language, kind: str) -> bool:
    return lang.id_for_node_kind(kind, True) is not None


def _valid(lang: Language, pattern: str) -> bool:
    """Whether a pattern compiles for this grammar (a grammar version may lack a type or field)."""
    try:
        Query(lang, f"{pattern} @x")
    except ValueError:  # tree_sitter.QueryError
        return False
    return True


def _comment_patterns(lang: Language) -> list[str]:
    """Every visible node type whose name contains "comment": the walker's test for a comment."""
    named: set[str] = set()
    anonymous: set[str] = set()
    for kind_id in range(lang.node_kind_count):
        kind = lang.node_kind_for_id(kind_id)
        if kind and "comment" in kind and lang.node_kind_is_visible(kind_id):
            (named if lang.node_kind_is_named(kind_id) else anonymous).add(kind)
    escaped = (kind.replace("\\", "\\\\").replace('"', '\\"') for kind in sorted(anonymous))
    return [f"({kind})" for kind in sorted(named)] + [f'"{kind}"' for kind in escaped]
