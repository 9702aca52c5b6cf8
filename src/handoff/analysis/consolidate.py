"""Across files: imports sorted into stdlib / third party / local (resolved inside the analysed set),
the module graph between the given files, entry points, and a short ranked list of central symbols.

Plain Python over the per-file results: the server runs it once every worker of a call is done.
"""

from __future__ import annotations

import posixpath
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

from handoff.analysis.languages import (
    C_STD_HEADERS,
    NODE_BUILTINS,
    PYTHON_STDLIB,
    RUBY_STDLIB,
    RUST_STD_CRATES,
)

TOP_SYMBOLS = 15
MAX_EDGES = 2000
MAX_EXTERNAL = 30
_JS_SUFFIXES = ("", ".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", "/index.ts", "/index.tsx", "/index.js")


class FileIndex:
    """The analysed files by display path, with what resolution needs to look them up."""

    def __init__(self, files: Mapping[str, Mapping[str, Any]]) -> None:
        self.files = files
        self.paths = sorted(files)
        self.by_package: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.dirs: dict[str, list[str]] = defaultdict(list)
        for path, info in files.items():
            self.dirs[posixpath.dirname(path)].append(path)
            if info.get("package"):
                self.by_package[(info["language"], info["package"])].append(path)
        # Every tail of every path that starts on a component ("a/b.py" -> "a/b.py", "b.py"), to
        # the first path in order with that tail: a suffix lookup per import, not a scan of all files.
        self._tails: dict[str, str] = {}
        self.directory_names: set[str] = set()
        for path in self.paths:
            parts = path.split("/")
            self.directory_names.update(parts[:-1])
            for k in range(len(parts)):
                self._tails.setdefault("/".join(parts[k:]), path)

    def exact(self, *candidates: str) -> list[str]:
        for candidate in candidates:
            normal = posixpath.normpath(candidate)
            if normal in self.files:
                return [normal]
        return []

    def suffix(self, *suffixes: str) -> list[str]:
        """Files whose path ends with one of the suffixes on a component boundary (first suffix wins)."""
        for suffix in suffixes:
            found = self._tails.get(suffix)
            if found is not None:
                return [found]
        return []

    def directory_suffix(self, segments: list[str], language: str) -> list[str]:
        """Files in the directory matching the longest trailing run of `segments` (Go packages)."""
        for k in range(len(segments), 0, -1):
            tail = "/".join(segments[-k:])
            for directory, paths in self.dirs.items():
                if directory == tail or directory.endswith("/" + tail):
                    same = sorted(p for p in paths if self.files[p]["language"] == language)
                    if same:
                        return same
        return []


def classify_imports(index: FileIndex, path: str, info: Mapping[str, Any]) -> list[dict[str, Any]]:
    language = info["language"]
    here = posixpath.dirname(path)
    out: list[dict[str, Any]] = []
    for raw in info.get("imports", []):
        category, resolved = _classify(index, language, here, raw)
        resolved = [r for r in resolved if r != path]
        out.append({**raw, "category": category, "resolved": resolved})
    return out


def _classify(index: FileIndex, lang: str, here: str, raw: Mapping[str, Any]) -> tuple[str, list[str]]:
    module: str = raw["module"]
    if lang == "python":
        return _python(index, here, module, raw.get("names", []))
    if lang in ("javascript", "typescript", "tsx"):
        if module.startswith((".", "/")):
            base = posixpath.join(here, module)
            return "local", index.exact(*(base + s for s in _JS_SUFFIXES))
        if module.startswith("node:") or module.split("/")[0] in NODE_BUILTINS:
            return "stdlib", []
        return "third_party", []
    if lang == "go":
        segments = module.split("/")
        if "." not in segments[0]:
            return "stdlib", []
        found = index.directory_suffix(segments, "go")
        return ("local", found) if found else ("third_party", [])
    if lang == "rust":
        return _rust(index, here, module, bool(raw.get("mod")))
    if lang == "java":
        if module.startswith(("java.", "javax.", "jdk.", "sun.")):
            return "stdlib", []
        parts = module.split(".")
        if parts[-1] == "*":
            found = sorted(index.by_package.get(("java", ".".join(parts[:-1])), []))
        else:
            found = [
                p
                for p in index.by_package.get(("java", ".".join(parts[:-1])), [])
                if posixpath.basename(p) == parts[-1] + ".java"
            ] or index.suffix("/".join(parts) + ".java")
        return ("local", found) if found else ("third_party", [])
    if lang in ("c", "cpp"):
        if raw.get("system"):
            if module in C_STD_HEADERS:
                return "stdlib", []
            found = index.suffix(module)
            return ("local", found) if found else ("third_party", [])
        return "local", index.exact(posixpath.join(here, module)) or index.suffix(module)
    if lang == "csharp":
        if module == "System" or module.startswith(("System.", "Microsoft.")):
            return "stdlib", []
        found = sorted(
            p
            for (language, namespace), paths in index.by_package.items()
            if language == "csharp" and (namespace == module or namespace.startswith(module + "."))
            for p in paths
        )
        return ("local", found) if found else ("third_party", [])
    if lang == "ruby":
        target = module if module.endswith(".rb") else module + ".rb"
        if raw.get("relative"):
            return "local", index.exact(posixpath.join(here, target))
        if module in RUBY_STDLIB:
            return "stdlib", []
        found = index.suffix(target)
        return ("local", found) if found else ("third_party", [])
    return "third_party", []


def _python(index: FileIndex, here: str, module: str, names: list[str]) -> tuple[str, list[str]]:
    if module.startswith("."):
        level = len(module) - len(module.lstrip("."))
        base = here
        for _ in range(level - 1):
            base = posixpath.dirname(base)
        rest = module[level:].replace(".", "/")
        target = posixpath.join(base, rest) if rest else base
        found: list[str] = []
        if not rest:  # from . import a, b: each name may be a module
            for name in names:
                found += index.exact(posixpath.join(target, name + ".py"), posixpath.join(target, name, "__init__.py"))
        return "local", found or index.exact(target + ".py", posixpath.join(target, "__init__.py"))
    top = module.split(".")[0]
    if top in PYTHON_STDLIB:
        return "stdlib", []
    path = module.replace(".", "/")
    found = []
    for name in names:  # from pkg import module
        found += index.suffix(f"{path}/{name}.py")
    found = found or index.suffix(path + ".py", path + "/__init__.py")
    if found:
        return "local", found
    if top in index.directory_names:
        return "local", []
    return "third_party", []


def _rust(index: FileIndex, here: str, module: str, is_mod: bool) -> tuple[str, list[str]]:
    segments = [s for s in module.replace("{", "::").split("::") if s and s.isidentifier()]
    if not segments:
        return "third_party", []
    if is_mod:
        name = segments[-1]
        return "local", index.exact(posixpath.join(here, name + ".rs"), posixpath.join(here, name, "mod.rs"))
    first = segments[0]
    if first in RUST_STD_CRATES:
        return "stdlib", []
    if first in ("crate", "self", "super"):
        rest = segments[1:]
        for k in range(len(rest), 0, -1):
            path = "/".join(rest[:k])
            found = index.suffix(path + ".rs", path + "/mod.rs")
            if found:
                return "local", found
        return "local", []
    return "third_party", []


def finish(
    files: Mapping[str, dict[str, Any]], references: Mapping[str, Mapping[str, int]], analysis_type: str
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """Imports classified against the analysed set, and the consolidated view, for one call."""
    index = FileIndex(files)
    imports = {path: classify_imports(index, path, info) for path, info in files.items() if "imports" in info}
    merged = {path: {**info, "imports": imports.get(path, [])} for path, info in files.items()}
    consolidated = consolidate(merged, references)
    if analysis_type not in ("dependencies", "full"):
        consolidated.pop("module_graph")
        consolidated.pop("external_dependencies")
        consolidated.pop("imports")
    if analysis_type not in ("structure", "full"):
        consolidated.pop("central_symbols")
    return imports, consolidated


def consolidate(
    files: Mapping[str, Mapping[str, Any]], references: Mapping[str, Mapping[str, int]] | None = None
) -> dict[str, Any]:
    """The cross-file view of already classified file results (`imports` carry `resolved`)."""
    references = references or {}
    edges: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    in_degree: Counter[str] = Counter()
    external: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    for path in sorted(files):
        for imp in files[path].get("imports", []):
            categories[imp["category"]] += 1
            if imp["category"] == "third_party":
                external[_package_name(files[path]["language"], imp["module"])] += 1
            for target in imp["resolved"]:
                if (path, target) not in seen and len(edges) < MAX_EDGES:
                    seen.add((path, target))
                    edges.append({"source": path, "target": target})
                    in_degree[target] += 1
    languages = Counter(info["language"] for info in files.values())
    entry_points = sorted(p for p, info in files.items() if info.get("entry_point"))
    return {
        "files": len(files),
        "languages": dict(sorted(languages.items())),
        "lines": sum(info.get("lines", {}).get("total", 0) for info in files.values()),
        "symbols": sum(info.get("symbol_count", 0) for info in files.values()),
        "imports": dict(sorted(categories.items())),
        "module_graph": {"nodes": sorted(files), "edges": edges},
        "entry_points": entry_points,
        "external_dependencies": [name for name, _ in external.most_common(MAX_EXTERNAL)],
        "central_symbols": rank_symbols(files, references, in_degree),
    }


def rank_symbols(
    files: Mapping[str, Mapping[str, Any]], references: Mapping[str, Mapping[str, int]], in_degree: Counter[str]
) -> list[dict[str, Any]]:
    """Top-level and member symbols scored by how often other files of the same language family use
    them (definitions do not count as uses), then by how many analysed files import their file."""
    short: dict[str, str] = {}  # symbol name -> the name uses are counted by
    ranked: list[tuple[str, dict[str, Any], str]] = []
    for path, info in files.items():
        for symbol in info.get("symbols", []):
            name = short.get(symbol["name"])
            if name is None:
                name = short[symbol["name"]] = _short(symbol["name"])
            if not symbol.get("declaration_only") and symbol["depth"] <= 1:
                ranked.append((path, symbol, name))
    # Uses are only ever looked up by these names: count nothing else (files name tens of thousands).
    names = {name for _, _, name in ranked}
    uses: dict[str, dict[str, int]] = {}
    family_total: dict[str, dict[str, int]] = defaultdict(dict)
    for path, info in files.items():
        refs = references.get(path, {})
        if len(refs) < len(names):
            own = {name: count for name, count in refs.items() if name in names}
        else:
            own = {name: refs[name] for name in names if name in refs}
        for symbol in info.get("symbols", []):  # a definition is no use
            name = short[symbol["name"]]
            if name in names:
                own[name] = own.get(name, 0) - 1
        uses[path] = own
        total = family_total[_family(info["language"])]
        for name, count in own.items():
            total[name] = total.get(name, 0) + count
    scored: list[tuple[float, str, str, dict[str, Any]]] = []
    for path, symbol, name in ranked:
        total = family_total[_family(files[path]["language"])]
        mine = uses[path].get(name, 0)
        elsewhere = max(total.get(name, 0) - mine, 0)
        score = 3 * elsewhere + max(mine, 0) + 2 * in_degree[path] + (1 if symbol["depth"] == 0 else 0)
        if symbol["kind"] in ("class", "interface", "struct", "trait", "enum", "record"):
            score += 1
        scored.append((score, f"{path}:{symbol['line']:08d}", path, symbol))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [
        {
            "name": s["name"],
            "qualified_name": s["qualified_name"],
            "kind": s["kind"],
            "file": path,
            "line": s["line"],
            "score": score,
            "signature": s["signature"],
        }
        for score, _, path, s in scored[:TOP_SYMBOLS]
    ]


def _family(language: str) -> str:
    return {"typescript": "javascript", "tsx": "javascript", "cpp": "c"}.get(language, language)


def _short(name: str) -> str:
    for sep in ("::", ".", " for "):
        name = name.rsplit(sep, 1)[-1]
    return name


def _package_name(language: str, module: str) -> str:
    if language == "python":
        return module.split(".")[0]
    if language in ("javascript", "typescript", "tsx"):
        parts = module.split("/")
        return "/".join(parts[:2]) if module.startswith("@") else parts[0]
    if language == "rust":
        return module.split("::")[0]
    return module
