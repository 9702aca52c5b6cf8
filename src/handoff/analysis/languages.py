"""Which language a file is in (extension, then shebang) and the tree-sitter grammar for it.

Grammars come from the official per-language wheels (tree-sitter-python, ...): they are compiled
into the wheel, so nothing is downloaded at run time. Each is loaded on first use.
"""

from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tree_sitter import Language


@dataclass(frozen=True, slots=True)
class Grammar:
    module: str
    function: str = "language"


GRAMMARS: dict[str, Grammar] = {
    "python": Grammar("tree_sitter_python"),
    "javascript": Grammar("tree_sitter_javascript"),
    "typescript": Grammar("tree_sitter_typescript", "language_typescript"),
    "tsx": Grammar("tree_sitter_typescript", "language_tsx"),
    "go": Grammar("tree_sitter_go"),
    "rust": Grammar("tree_sitter_rust"),
    "java": Grammar("tree_sitter_java"),
    "c": Grammar("tree_sitter_c"),
    "cpp": Grammar("tree_sitter_cpp"),
    "csharp": Grammar("tree_sitter_c_sharp"),
    "ruby": Grammar("tree_sitter_ruby"),
}

EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".pyw": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "c",  # upgraded to cpp when the text looks like C++
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".c++": "cpp",
    ".hh": "cpp",
    ".hpp": "cpp",
    ".hxx": "cpp",
    ".cs": "csharp",
    ".rb": "ruby",
    ".rake": "ruby",
    ".gemspec": "ruby",
}
FILENAMES: dict[str, str] = {"Rakefile": "ruby", "Gemfile": "ruby"}

# Interpreter name in a shebang → language ("#!/usr/bin/env python3", "#!/usr/bin/node").
_SHEBANG = re.compile(rb"^#![ \t]*(\S+)(?:[ \t]+(?:-\S+[ \t]+)*(\S+))?")
_INTERPRETERS = [
    (re.compile(r"^python(\d(\.\d+)?)?$"), "python"),
    (re.compile(r"^(node|nodejs|bun)$"), "javascript"),
    (re.compile(r"^(deno|ts-node|tsx)$"), "typescript"),
    (re.compile(r"^ruby(\d(\.\d+)?)?$"), "ruby"),
]
_CPP_HINT = re.compile(rb"^\s*(class|namespace|template\s*<|using\s+namespace|public:|private:)", re.M)


def detect_from_name(path: str) -> str | None:
    """The language by file name alone (directory walks use only this: no read needed)."""
    pure = PurePosixPath(path)
    if pure.name in FILENAMES:
        return FILENAMES[pure.name]
    return EXTENSIONS.get(pure.suffix.lower())


def detect(path: str, head: bytes) -> str | None:
    """The language of a file from its name, then its shebang; None when unsupported."""
    language = detect_from_name(path)
    if language == "c" and path.lower().endswith(".h") and _CPP_HINT.search(head[:65536]):
        return "cpp"
    if language is not None:
        return language
    return detect_from_shebang(head)


def detect_from_shebang(head: bytes) -> str | None:
    match = _SHEBANG.match(head[:256])
    if match is None:
        return None
    program = match.group(1).decode("ascii", "replace").rsplit("/", 1)[-1]
    if program == "env" and match.group(2):
        program = match.group(2).decode("ascii", "replace").rsplit("/", 1)[-1]
    for pattern, language in _INTERPRETERS:
        if pattern.match(program):
            return language
    return None


@cache
def grammar(language: str) -> Language:
    from tree_sitter import Language  # the server sorts imports with this module, without parsing

    spec = GRAMMARS[language]
    module = importlib.import_module(spec.module)
    return Language(getattr(module, spec.function)())


# -- standard libraries (for sorting imports into stdlib / third party / local) -------------------

PYTHON_STDLIB = frozenset(sys.stdlib_module_names)

NODE_BUILTINS = frozenset(
    [
        "assert",
        "async_hooks",
        "buffer",
        "child_process",
        "cluster",
        "console",
        "constants",
        "crypto",
        "dgram",
        "diagnostics_channel",
        "dns",
        "domain",
        "events",
        "fs",
        "http",
        "http2",
        "https",
        "inspector",
        "module",
        "net",
        "os",
        "path",
        "perf_hooks",
        "process",
        "punycode",
        "querystring",
        "readline",
        "repl",
        "stream",
        "string_decoder",
        "sys",
        "timers",
        "tls",
        "trace_events",
        "tty",
        "url",
        "util",
        "v8",
        "vm",
        "wasi",
        "worker_threads",
        "zlib",
        "test",
    ]
)

C_STD_HEADERS = frozenset(
    [
        "assert.h",
        "complex.h",
        "ctype.h",
        "errno.h",
        "fenv.h",
        "float.h",
        "inttypes.h",
        "iso646.h",
        "limits.h",
        "locale.h",
        "math.h",
        "setjmp.h",
        "signal.h",
        "stdalign.h",
        "stdarg.h",
        "stdatomic.h",
        "stdbool.h",
        "stddef.h",
        "stdint.h",
        "stdio.h",
        "stdlib.h",
        "stdnoreturn.h",
        "string.h",
        "tgmath.h",
        "threads.h",
        "time.h",
        "uchar.h",
        "wchar.h",
        "wctype.h",
        "unistd.h",
        "fcntl.h",
        "pthread.h",
        "dirent.h",
        "sys/types.h",
        "sys/stat.h",
        "sys/socket.h",
        "sys/time.h",
        "sys/wait.h",
        "sys/mman.h",
        "netinet/in.h",
        "arpa/inet.h",
        "algorithm",
        "any",
        "array",
        "atomic",
        "bitset",
        "cassert",
        "cctype",
        "cerrno",
        "cfloat",
        "chrono",
        "cinttypes",
        "climits",
        "cmath",
        "complex",
        "condition_variable",
        "cstddef",
        "cstdint",
        "cstdio",
        "cstdlib",
        "cstring",
        "ctime",
        "deque",
        "exception",
        "filesystem",
        "fstream",
        "functional",
        "future",
        "initializer_list",
        "iomanip",
        "ios",
        "iosfwd",
        "iostream",
        "istream",
        "iterator",
        "limits",
        "list",
        "locale",
        "map",
        "memory",
        "mutex",
        "new",
        "numeric",
        "optional",
        "ostream",
        "queue",
        "random",
        "ranges",
        "ratio",
        "regex",
        "set",
        "shared_mutex",
        "span",
        "sstream",
        "stack",
        "stdexcept",
        "streambuf",
        "string",
        "string_view",
        "system_error",
        "thread",
        "tuple",
        "type_traits",
        "typeindex",
        "typeinfo",
        "unordered_map",
        "unordered_set",
        "utility",
        "valarray",
        "variant",
        "vector",
        "format",
        "bit",
        "concepts",
        "coroutine",
    ]
)

RUBY_STDLIB = frozenset(
    [
        "abbrev",
        "base64",
        "benchmark",
        "bigdecimal",
        "cgi",
        "csv",
        "date",
        "delegate",
        "digest",
        "English",
        "erb",
        "etc",
        "fileutils",
        "find",
        "forwardable",
        "getoptlong",
        "io/console",
        "ipaddr",
        "json",
        "logger",
        "matrix",
        "monitor",
        "net/http",
        "net/https",
        "observer",
        "open3",
        "open-uri",
        "optparse",
        "ostruct",
        "pathname",
        "pp",
        "prettyprint",
        "prime",
        "pstore",
        "psych",
        "racc",
        "rdoc",
        "readline",
        "resolv",
        "ripper",
        "securerandom",
        "set",
        "shellwords",
        "singleton",
        "socket",
        "stringio",
        "strscan",
        "tempfile",
        "time",
        "timeout",
        "tmpdir",
        "tsort",
        "un",
        "uri",
        "weakref",
        "yaml",
        "zlib",
    ]
)

RUST_STD_CRATES = frozenset({"std", "core", "alloc", "proc_macro", "test"})
