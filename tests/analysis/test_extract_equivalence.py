"""The query-driven extractor gives exactly what a full walk of the tree gives (reference_walk.py):
on the sample project, on this repository's own source, on broken code, and on odd corners."""

from __future__ import annotations

import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from tree_sitter import Parser

from handoff.analysis.confinement import Roots, walk
from handoff.analysis.extract import extract
from handoff.analysis.languages import detect, grammar
from tests.analysis.conftest import SAMPLE
from tests.analysis.reference_walk import reference_extract

REPO = Path(__file__).resolve().parents[2]
MUTATIONS = 400
_PUNCTUATION = b"(){}[];:,.\"'\n #=<>/*"


def both(language: str, source: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    tree = Parser(grammar(language)).parse(source)
    return asdict(extract(language, tree, source)), asdict(reference_extract(language, tree, source))


def sources(*directories: Path) -> list[tuple[str, str, bytes]]:
    roots = Roots(list(directories))
    found = []
    for directory in directories:
        for path in walk(roots, Path(directory).resolve(), limit=2000):
            data = path.read_bytes()
            language = detect(path.name, data[:65536])
            if language is not None and b"\x00" not in data:
                found.append((str(path), language, data))
    return found


def test_the_sample_project_gives_the_same_facts() -> None:
    files = sources(SAMPLE)
    assert len({language for _, language, _ in files}) == 11
    for path, language, data in files:
        new, old = both(language, data)
        assert new == old, path


def test_this_repositorys_source_gives_the_same_facts() -> None:
    files = sources(REPO / "src", REPO / "tests", REPO / "bench")
    assert len(files) > 100
    for path, language, data in files:
        new, old = both(language, data)
        assert new == old, path


def test_broken_code_gives_the_same_facts() -> None:
    """Random edits of the sample files: ERROR and MISSING nodes, half-finished definitions."""
    rng = random.Random(12)
    files = sources(SAMPLE)
    broken = 0
    for _ in range(MUTATIONS):
        path, language, data = rng.choice(files)
        text = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(text) + 1)
            roll = rng.random()
            if roll < 0.4:
                del text[at : at + rng.randint(1, 20)]
            elif roll < 0.8:
                text[at:at] = bytes(rng.choice(_PUNCTUATION) for _ in range(rng.randint(1, 5)))
            else:
                start = rng.randrange(len(text) + 1)
                text[at:at] = text[start : start + rng.randint(1, 50)]
        new, old = both(language, bytes(text))
        assert new == old, (path, bytes(text))
        broken += new["error_count"] > 0
    assert broken > MUTATIONS // 2  # the edits did break most files


@pytest.mark.parametrize(
    ("language", "source"),
    [
        # Rust doc comments have children; nothing inside a comment counts.
        ("rust", b"/// Docs `Thing`\n//! inner\nfn f() { let x = 1 }\n/** block */ struct S;\n"),
        # Two MISSING tokens in one place, in tree order.
        ("ruby", b"class A\n  def f(x)\n    if x\n      [1, 2\n"),
        # A one-character ERROR leaf, and MISSING first in an ERROR.
        ("python", b';"=,.\n>>\ndef f(:\n  x = (1\nprint(?)\n'),
        # C# contextual keywords are `identifier` nodes with a child: not counted.
        ("csharp", b"class C { void M() { var x = from a in b select a; var y = x; } }\n"),
        # require/import calls and the require.main entry point only when the source has them.
        ("javascript", b"const a = require('a');\nimport('b');\nif (require.main === module) main();\n"),
        ("typescript", b"export { x } from './x';\nconst f = async () => 1;\nlet g = function () {};\n"),
        ("python", b'import os\nif __name__ == "__main__":\n    def inner(): pass\n'),
        ("go", b'package main\nimport ("fmt"; s "strings")\nfunc main() {}\nfunc (r *T) M() {}\n'),
        ("c", b"#include <stdio.h>\nint f(void);\nstruct s { int (*g)(int); };\nint main() { return 0 }\n"),
        ("cpp", b"namespace n { class K { void m(); }; }\nint main() {}\n"),
        ("java", b"package p; import java.util.*; class A { public static void main(String[] a) {} }\n"),
        ("ruby", b"require 'json'\nrequire_relative 'x'\nload 'y.rb'\nif __FILE__ == $0\n  run\nend\n"),
        # Deep nesting: no recursion anywhere.
        ("python", b"x = " + b"(" * 3000 + b"1" + b")" * 3000 + b"\n"),
    ],
)
def test_odd_corners_give_the_same_facts(language: str, source: bytes) -> None:
    new, old = both(language, source)
    assert new == old
