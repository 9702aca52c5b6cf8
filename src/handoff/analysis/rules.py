"""What one node of a parse tree contributes: a symbol, an import, a package, an entry point.

These rules look at a single node and its near children. Which nodes they are shown, and in what
order, is the traversal's business (`extract.py` runs tree-sitter queries in C to find them); the
rules only require to see the nodes they care about in document pre-order, each with the innermost
symbol that encloses it.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from tree_sitter import Node

MAX_SYMBOLS = 400
MAX_IMPORTS = 300
MAX_SYNTAX_ERRORS = 50
SIGNATURE_CHARS = 200
DOC_CHARS = 200
NAME_CHARS = 200

# node type → symbol kind, per language (wrappers such as export or decorators are walked through).
DEFINITIONS: dict[str, dict[str, str]] = {
    "python": {"class_definition": "class", "function_definition": "function"},
    "javascript": {
        "class_declaration": "class",
        "function_declaration": "function",
        "generator_function_declaration": "function",
        "method_definition": "method",
    },
    "go": {"function_declaration": "function", "method_declaration": "method", "type_spec": "type"},
    "rust": {
        "function_item": "function",
        "function_signature_item": "function",
        "struct_item": "struct",
        "enum_item": "enum",
        "trait_item": "trait",
        "impl_item": "impl",
        "mod_item": "module",
        "type_item": "type",
        "union_item": "union",
    },
    "java": {
        "class_declaration": "class",
        "interface_declaration": "interface",
        "enum_declaration": "enum",
        "record_declaration": "record",
        "method_declaration": "method",
        "constructor_declaration": "constructor",
    },
    "c": {"function_definition": "function", "struct_specifier": "struct", "enum_specifier": "enum"},
    "csharp": {
        "class_declaration": "class",
        "interface_declaration": "interface",
        "struct_declaration": "struct",
        "enum_declaration": "enum",
        "record_declaration": "record",
        "method_declaration": "method",
        "constructor_declaration": "constructor",
        "namespace_declaration": "namespace",
        "file_scoped_namespace_declaration": "namespace",
    },
    "ruby": {"class": "class", "module": "module", "method": "function", "singleton_method": "function"},
}
DEFINITIONS["typescript"] = {
    **DEFINITIONS["javascript"],
    "abstract_class_declaration": "class",
    "interface_declaration": "interface",
    "type_alias_declaration": "type",
    "enum_declaration": "enum",
    "internal_module": "namespace",
    "method_signature": "method",
    "abstract_method_signature": "method",
}
DEFINITIONS["tsx"] = DEFINITIONS["typescript"]
DEFINITIONS["cpp"] = {
    **DEFINITIONS["c"],
    "class_specifier": "class",
    "namespace_definition": "namespace",
}
CONTAINERS = {"class", "interface", "struct", "enum", "trait", "impl", "module", "namespace", "record"}
FUNCTIONS = {"function", "method", "constructor"}
IDENTIFIERS = {
    "identifier",
    "type_identifier",
    "field_identifier",
    "property_identifier",
    "constant",
    "namespace_identifier",
    "scoped_identifier",
}
_COMMENT_LINE = re.compile(r"^\s*(?:///?|/\*+|\*(?!/)|#(?![!\[])|--)\s?(.*?)\s*(?:\*/)?\s*$")
_ATTRIBUTE_LINE = re.compile(r"^\s*(?:@|#\[|\[)")
_WS = re.compile(r"\s+")
_STRING_QUOTES = re.compile(r"^[rRbBuUfF]*(?:\"\"\"|\'\'\'|\"|\')|(?:\"\"\"|\'\'\'|\"|\')$")


JS_FAMILY = ("javascript", "typescript", "tsx")
JS_FUNCTION_VALUES = ("arrow_function", "function_expression", "function")


class NodeRules:
    """The facts of one file, filled node by node."""

    def __init__(self, language: str, source: bytes, lines: list[str]) -> None:
        self.language = language
        self.source = source
        self.lines = lines
        self.definitions = DEFINITIONS[language]
        self.symbols: list[dict[str, Any]] = []
        self.imports: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.error_count = 0
        self.comment_rows: set[int] = set()
        self.references: Counter[str] = Counter()
        self.entry_point = False
        self.package: str | None = None

    def text(self, node: Node | None, limit: int = NAME_CHARS) -> str:
        if node is None:
            return ""
        raw = self.source[node.start_byte : min(node.end_byte, node.start_byte + limit * 4)]
        return raw.decode("utf-8", "replace")[:limit]

    def visit(self, node: Node, parent: int, qualifier: str) -> tuple[int, str]:
        """Imports, entry point and symbol of `node`, whose innermost enclosing symbol is `parent`
        (an index into `symbols`, or -1) named `qualifier`. Returns what encloses its children."""
        self._maybe_import(node)
        self._maybe_entry_point(node, parent)
        kind = node.type
        symbol_kind = self.definitions.get(kind)
        if kind == "variable_declarator" and self.language in JS_FAMILY:
            value = node.child_by_field_name("value")
            if value is not None and value.type in JS_FUNCTION_VALUES:
                symbol_kind = "function"
        if symbol_kind is not None:
            index = self._symbol(node, symbol_kind, parent, qualifier)
            if index is not None:
                return index, self.symbols[index]["qualified_name"]
        elif self._is_declaration_only(node):
            self._symbol(node, "function", parent, qualifier, declaration=True)
        return parent, qualifier

    # -- symbols -------------------------------------------------------------------------------
    def _symbol(self, node: Node, kind: str, parent: int, qualifier: str, *, declaration: bool = False) -> int | None:
        if len(self.symbols) >= MAX_SYMBOLS:
            return None
        name, kind = self._name_and_kind(node, kind)
        if not name:
            return None
        parent_kind = self.symbols[parent]["kind"] if parent >= 0 else None
        if kind == "function" and parent_kind in CONTAINERS - {"module", "namespace"}:
            kind = "method"
        if self.language == "go" and kind == "method":
            receiver = node.child_by_field_name("receiver")
            owner = re.findall(r"[A-Za-z_]\w*", self.text(receiver))
            qualifier = owner[-1] if owner else qualifier
        qualified = f"{qualifier}.{name}" if qualifier else name
        symbol: dict[str, Any] = {
            "name": name,
            "qualified_name": qualified[:NAME_CHARS],
            "kind": kind,
            "line": node.start_point.row + 1,
            "end_line": node.end_point.row + 1,
            "parent": self.symbols[parent]["qualified_name"] if parent >= 0 else (qualifier or None),
            "depth": (self.symbols[parent]["depth"] + 1) if parent >= 0 else 0,
            "signature": self._signature(node, kind),
            "doc": self._doc(node),
        }
        if declaration:
            symbol["declaration_only"] = True
        self.symbols.append(symbol)
        return len(self.symbols) - 1

    def _name_and_kind(self, node: Node, kind: str) -> tuple[str, str]:
        lang = self.language
        if lang == "go" and node.type == "type_spec":
            body = node.child_by_field_name("type")
            if body is not None and body.type == "struct_type":
                kind = "struct"
            elif body is not None and body.type == "interface_type":
                kind = "interface"
            return self.text(node.child_by_field_name("name")), kind
        if lang == "rust" and node.type == "impl_item":
            target = self.text(node.child_by_field_name("type"))
            trait = node.child_by_field_name("trait")
            return (f"{self.text(trait)} for {target}" if trait is not None else target), kind
        if lang in ("c", "cpp") and node.type in ("struct_specifier", "enum_specifier", "class_specifier"):
            if node.child_by_field_name("body") is None:
                return "", kind
            return self.text(node.child_by_field_name("name")), kind
        if lang in ("c", "cpp") and node.type in ("function_definition", "declaration", "field_declaration"):
            return self._c_declarator_name(node.child_by_field_name("declarator")), kind
        if lang == "ruby" and node.type == "singleton_method":
            return f"self.{self.text(node.child_by_field_name('name'))}", kind
        if node.type == "variable_declarator":
            return self.text(node.child_by_field_name("name")), kind
        return self.text(node.child_by_field_name("name")), kind

    def _c_declarator_name(self, node: Node | None) -> str:
        depth = 0
        while node is not None and depth < 50:
            if node.type in (
                "identifier",
                "field_identifier",
                "qualified_identifier",
                "destructor_name",
                "operator_name",
                "type_identifier",
            ):
                return self.text(node)
            node = node.child_by_field_name("declarator")
            depth += 1
        return ""

    def _is_declaration_only(self, node: Node) -> bool:
        """A C/C++ prototype (`int f(void);`) or a method declared in a class body."""
        if self.language not in ("c", "cpp") or node.type not in ("declaration", "field_declaration"):
            return False
        declarator = node.child_by_field_name("declarator")
        return declarator is not None and declarator.type == "function_declarator"

    def _signature(self, node: Node, kind: str) -> str:
        body = node.child_by_field_name("body")
        end = body.start_byte if body is not None and kind in FUNCTIONS | {"class"} else node.end_byte
        raw = self.source[node.start_byte : min(end, node.start_byte + SIGNATURE_CHARS * 4)]
        first = raw.decode("utf-8", "replace")
        if body is None or kind not in FUNCTIONS:
            first = first.split("\n", 1)[0]
        flat = _WS.sub(" ", first).strip().rstrip("{:").strip()
        return flat if len(flat) <= SIGNATURE_CHARS else flat[: SIGNATURE_CHARS - 1] + "…"

    def _doc(self, node: Node) -> str | None:
        if self.language == "python":
            body = node.child_by_field_name("body")
            # named_child(0), not named_children[0]: a class body may have hundreds of children.
            first = body.named_child(0) if body is not None and body.named_child_count else None
            if first is not None and first.type == "expression_statement" and first.named_child_count:
                string = first.named_child(0)
                if string.type == "string":
                    return _first_line(_STRING_QUOTES.sub("", self.text(string, DOC_CHARS * 4)))
        # The comment block right above the definition (skipping decorators/attributes).
        row = node.start_point.row - 1
        while row >= 0 and _ATTRIBUTE_LINE.match(self.lines[row]):
            row -= 1
        block: list[str] = []
        while row >= 0 and len(block) < 20:
            match = _COMMENT_LINE.match(self.lines[row])
            if match is None or not self.lines[row].strip():
                break
            block.append(match.group(1))
            row -= 1
        for line in reversed(block):
            if line.strip():
                return _first_line(line)
        return None

    # -- syntax errors -------------------------------------------------------------------------
    def syntax_error(self, node: Node) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_SYNTAX_ERRORS:
            self.errors.append(
                {
                    "line": node.start_point.row + 1,
                    "column": node.start_point.column + 1,
                    "kind": "missing" if node.is_missing else "error",
                    "text": _WS.sub(" ", self.text(node, 60)) if not node.is_missing else node.type,
                }
            )

    # -- imports -------------------------------------------------------------------------------
    def _add_import(self, module: str, node: Node, **extra: Any) -> None:
        module = module.strip()
        if module and len(self.imports) < MAX_IMPORTS:
            self.imports.append({"module": module[:NAME_CHARS], "line": node.start_point.row + 1, **extra})

    def _maybe_import(self, node: Node) -> None:
        kind, lang = node.type, self.language
        if lang == "python":
            if kind == "import_statement":
                for child in node.named_children:
                    target = child.child_by_field_name("name") if child.type == "aliased_import" else child
                    self._add_import(self.text(target), node)
            elif kind == "import_from_statement":
                names = [
                    self.text(c.child_by_field_name("name") if c.type == "aliased_import" else c)
                    for c in node.children_by_field_name("name")
                ]
                self._add_import(self.text(node.child_by_field_name("module_name")), node, names=names[:20])
        elif lang in ("javascript", "typescript", "tsx"):
            if kind in ("import_statement", "export_statement"):
                source = node.child_by_field_name("source")
                if source is not None:
                    self._add_import(self.text(source).strip("'\"`"), node)
            elif kind == "call_expression":
                function = node.child_by_field_name("function")
                if (
                    function is not None
                    and function.type in ("identifier", "import")
                    and self.text(function)
                    in (
                        "require",
                        "import",
                    )
                ):
                    arguments = node.child_by_field_name("arguments")
                    first = arguments.named_child(0) if arguments is not None and arguments.named_child_count else None
                    if first is not None and first.type == "string":
                        self._add_import(self.text(first).strip("'\"`"), node)
        elif lang == "go":
            if kind == "import_spec":
                self._add_import(self.text(node.child_by_field_name("path")).strip('"`'), node)
            elif kind == "package_clause" and node.named_child_count:
                self.package = self.text(node.named_child(0))
        elif lang == "rust":
            if kind == "use_declaration":
                self._add_import(_WS.sub("", self.text(node.child_by_field_name("argument"))), node)
            elif kind == "extern_crate_declaration":
                self._add_import(self.text(node.child_by_field_name("name")), node)
            elif kind == "mod_item" and node.child_by_field_name("body") is None:
                self._add_import(f"self::{self.text(node.child_by_field_name('name'))}", node, mod=True)
        elif lang == "java":
            if kind == "import_declaration":
                parts = [self.text(c) for c in node.named_children if c.type in ("scoped_identifier", "identifier")]
                wildcard = any(c.type == "asterisk" for c in node.named_children)
                if parts:
                    self._add_import(parts[0] + (".*" if wildcard else ""), node)
            elif kind == "package_declaration" and node.named_child_count:
                self.package = self.text(node.named_child(0))
        elif lang in ("c", "cpp"):
            if kind == "preproc_include":
                path = node.child_by_field_name("path")
                if path is not None:
                    system = path.type == "system_lib_string"
                    self._add_import(self.text(path).strip('<>"'), node, system=system)
        elif lang == "csharp":
            if kind == "using_directive":
                used = [c for c in node.named_children if c.type in ("qualified_name", "identifier")]
                if used:
                    self._add_import(self.text(used[-1]), node)
            elif kind in ("namespace_declaration", "file_scoped_namespace_declaration") and self.package is None:
                self.package = self.text(node.child_by_field_name("name"))
        elif lang == "ruby" and kind == "call":
            method = self.text(node.child_by_field_name("method"))
            if method in ("require", "require_relative", "load") and node.child_by_field_name("receiver") is None:
                arguments = node.child_by_field_name("arguments")
                first = arguments.named_child(0) if arguments is not None and arguments.named_child_count else None
                if first is not None and first.type == "string":
                    self._add_import(self.text(first).strip("'\""), node, relative=method == "require_relative")

    # -- entry points --------------------------------------------------------------------------
    def _maybe_entry_point(self, node: Node, parent: int) -> None:
        if self.entry_point:
            return
        kind, lang = node.type, self.language
        if lang == "python" and kind == "if_statement" and parent < 0:
            condition = self.text(node.child_by_field_name("condition"))
            self.entry_point = "__name__" in condition and "__main__" in condition
        elif lang == "ruby" and kind == "if" and parent < 0:
            condition = self.text(node.child_by_field_name("condition"))
            self.entry_point = "__FILE__" in condition and ("$0" in condition or "$PROGRAM_NAME" in condition)
        elif lang in ("javascript", "typescript", "tsx") and kind == "binary_expression":
            text = self.text(node)
            self.entry_point = "require.main" in text and "module" in text
        elif lang in ("go", "rust", "c", "cpp") and kind in (
            "function_declaration",
            "function_item",
            "function_definition",
        ):
            name = (
                self._c_declarator_name(node.child_by_field_name("declarator"))
                if lang in ("c", "cpp")
                else self.text(node.child_by_field_name("name"))
            )
            self.entry_point = name == "main" and parent < 0 and (lang != "go" or self.package == "main")
        elif lang in ("java", "csharp") and kind == "method_declaration":
            name = self.text(node.child_by_field_name("name"))
            modifiers = self.text(node, 400).split("(", 1)[0]
            self.entry_point = name in ("main", "Main") and "static" in modifiers


def _first_line(text: str) -> str | None:
    for line in text.splitlines():
        stripped = line.strip().lstrip("*").strip()
        if stripped:
            return stripped if len(stripped) <= DOC_CHARS else stripped[: DOC_CHARS - 1] + "…"
    return None
