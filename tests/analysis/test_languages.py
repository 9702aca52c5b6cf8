"""Correctness on the committed sample project: exact symbols and import edges, per language."""

from __future__ import annotations

from typing import Any

import pytest

from handoff.analysis import engine
from tests.analysis.conftest import SAMPLE


@pytest.fixture(scope="module")
def full() -> dict[str, Any]:
    return engine.run([SAMPLE], ["."], "full")


def by_path(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in result["files"]}


def symbols(result: dict[str, Any], path: str) -> list[tuple[str, str]]:
    return [(s["kind"], s["qualified_name"]) for s in by_path(result)[path]["symbols"]]


def imports(result: dict[str, Any], path: str) -> list[tuple[str, str, list[str]]]:
    return [(i["module"], i["category"], i["resolved"]) for i in by_path(result)[path]["imports"]]


def test_directory_walk_honours_gitignore_and_skips_non_source_files(full: dict[str, Any]) -> None:
    paths = set(by_path(full))
    # Both exist on disk (committed with `git add -f`): only .gitignore keeps them out.
    assert (SAMPLE / "ignored" / "skip.py").is_file() and (SAMPLE / "py" / "app" / "auto.generated.py").is_file()
    assert "ignored/skip.py" not in paths  # ignored/ in .gitignore
    assert "py/app/auto.generated.py" not in paths  # *.generated.py in .gitignore
    assert "notes.txt" not in paths  # not source: skipped silently in a walk
    assert full["errors"] == []
    assert len(paths) == 23


def test_python_symbols_nesting_docstrings_and_imports(full: dict[str, Any]) -> None:
    assert symbols(full, "py/app/models.py") == [
        ("class", "User"),
        ("method", "User.greet"),
        ("function", "User.greet.shout"),
    ]
    user, greet, shout = by_path(full)["py/app/models.py"]["symbols"]
    assert (user["line"], user["end_line"], user["doc"]) == (5, 14, "A person using the app.")
    assert greet["signature"] == 'def greet(self, other: "User") -> str'
    assert (greet["parent"], greet["depth"], shout["parent"], shout["depth"]) == ("User", 1, "User.greet", 2)
    assert by_path(full)["py/app/util.py"]["symbols"][0]["doc"] == "Helpers for text."
    assert imports(full, "py/app/main.py") == [
        ("os", "stdlib", []),
        ("requests", "third_party", []),
        ("app.models", "local", ["py/app/models.py"]),
        (".", "local", ["py/app/util.py"]),
    ]
    assert by_path(full)["py/app/main.py"]["entry_point"] is True


def test_javascript_symbols_and_imports(full: dict[str, Any]) -> None:
    assert symbols(full, "js/index.js") == [
        ("class", "Server"),
        ("method", "Server.start"),
        ("function", "main"),
        ("function", "handler"),
    ]
    assert by_path(full)["js/index.js"]["symbols"][0]["doc"] == "Serves the sample."
    assert by_path(full)["js/math.js"]["symbols"][0]["doc"] == "Adds two numbers."
    assert imports(full, "js/index.js") == [
        ("fs", "stdlib", []),
        ("./math.js", "local", ["js/math.js"]),
        ("express", "third_party", []),
    ]


def test_typescript_and_tsx_symbols_and_imports(full: dict[str, Any]) -> None:
    assert symbols(full, "ts/shapes.ts") == [
        ("interface", "Shape"),
        ("method", "Shape.area"),
        ("class", "Circle"),
        ("method", "Circle.constructor"),
        ("method", "Circle.area"),
        ("enum", "Color"),
        ("type", "Id"),
    ]
    assert by_path(full)["ts/view.tsx"]["language"] == "tsx"
    assert symbols(full, "ts/view.tsx") == [("function", "View")]
    assert imports(full, "ts/shapes.ts") == [("node:events", "stdlib", []), ("lodash", "third_party", [])]
    assert imports(full, "ts/view.tsx") == [("react", "third_party", []), ("./shapes", "local", ["ts/shapes.ts"])]


def test_go_symbols_receivers_and_package_imports(full: dict[str, Any]) -> None:
    assert symbols(full, "go/store/store.go") == [
        ("struct", "Store"),
        ("interface", "Reader"),
        ("function", "New"),
        ("method", "Store.Get"),
    ]
    get = by_path(full)["go/store/store.go"]["symbols"][3]
    assert (get["signature"], get["doc"]) == (
        "func (s *Store) Get(key string) string",
        "Get returns the value for key.",
    )
    assert imports(full, "go/main.go") == [
        ("fmt", "stdlib", []),
        ("example.com/sample/go/store", "local", ["go/store/store.go"]),
    ]
    assert imports(full, "go/store/store.go") == [("github.com/google/uuid", "third_party", [])]
    assert by_path(full)["go/main.go"]["entry_point"] is True


def test_rust_symbols_and_imports(full: dict[str, Any]) -> None:
    assert symbols(full, "rust/src/shapes.rs") == [
        ("trait", "Area"),
        ("method", "Area.area"),
        ("struct", "Square"),
        ("impl", "Area for Square"),
        ("method", "Area for Square.area"),
    ]
    assert by_path(full)["rust/src/shapes.rs"]["symbols"][0]["doc"] == "Anything with an area."
    assert imports(full, "rust/src/main.rs") == [
        ("std::collections::HashMap", "stdlib", []),
        ("serde::Serialize", "third_party", []),
        ("crate::shapes::Square", "local", ["rust/src/shapes.rs"]),
        ("self::shapes", "local", ["rust/src/shapes.rs"]),
    ]


def test_java_symbols_and_imports(full: dict[str, Any]) -> None:
    assert symbols(full, "java/com/example/App.java") == [
        ("class", "App"),
        ("method", "App.main"),
        ("method", "App.count"),
    ]
    assert symbols(full, "java/com/example/model/Item.java") == [
        ("class", "Item"),
        ("constructor", "Item.Item"),
        ("method", "Item.name"),
    ]
    assert imports(full, "java/com/example/App.java") == [
        ("java.util.List", "stdlib", []),
        ("com.example.model.Item", "local", ["java/com/example/model/Item.java"]),
        ("org.junit.Test", "third_party", []),
    ]
    assert by_path(full)["java/com/example/App.java"]["entry_point"] is True


def test_c_symbols_prototypes_and_includes(full: dict[str, Any]) -> None:
    assert symbols(full, "c/list.h") == [("struct", "node"), ("function", "list_len")]
    prototype = by_path(full)["c/list.h"]["symbols"][1]
    assert (prototype["declaration_only"], prototype["doc"]) == (True, "Number of nodes from head.")
    assert symbols(full, "c/list.c") == [("function", "list_len")]
    assert imports(full, "c/main.c") == [("stdio.h", "stdlib", []), ("list.h", "local", ["c/list.h"])]


def test_cpp_symbols_namespaces_and_includes(full: dict[str, Any]) -> None:
    assert symbols(full, "cpp/shape.hpp") == [
        ("namespace", "geo"),
        ("class", "geo.Shape"),
        ("method", "geo.Shape.area"),
    ]
    assert symbols(full, "cpp/shape.cpp") == [("namespace", "geo"), ("function", "geo.total")]
    assert imports(full, "cpp/shape.cpp") == [
        ("shape.hpp", "local", ["cpp/shape.hpp"]),
        ("vector", "stdlib", []),
        ("boost/format.hpp", "third_party", []),
    ]


def test_csharp_symbols_and_usings(full: dict[str, Any]) -> None:
    assert symbols(full, "csharp/Models/Order.cs") == [
        ("namespace", "Sample.Models"),
        ("class", "Sample.Models.Order"),
        ("constructor", "Sample.Models.Order.Order"),
        ("method", "Sample.Models.Order.Total"),
        ("interface", "Sample.Models.IRepo"),
        ("method", "Sample.Models.IRepo.Find"),
    ]
    assert imports(full, "csharp/Program.cs") == [
        ("System", "stdlib", []),
        ("Sample.Models", "local", ["csharp/Models/Order.cs"]),
        ("Newtonsoft.Json", "third_party", []),
    ]
    assert by_path(full)["csharp/Program.cs"]["entry_point"] is True


def test_ruby_symbols_and_requires(full: dict[str, Any]) -> None:
    assert symbols(full, "ruby/lib/greeter.rb") == [
        ("module", "Sample"),
        ("class", "Sample.Greeter"),
        ("method", "Sample.Greeter.greet"),
        ("method", "Sample.Greeter.self.create"),
    ]
    assert by_path(full)["ruby/lib/greeter.rb"]["symbols"][2]["doc"] == "Greets people by name."
    assert imports(full, "ruby/app.rb") == [
        ("json", "stdlib", []),
        ("sinatra", "third_party", []),
        ("lib/greeter", "local", ["ruby/lib/greeter.rb"]),
    ]


def test_consolidated_view_has_the_module_graph_entry_points_and_central_symbols(full: dict[str, Any]) -> None:
    consolidated = full["consolidated"]
    edges = {(e["source"], e["target"]) for e in consolidated["module_graph"]["edges"]}
    assert edges == {
        ("c/list.c", "c/list.h"),
        ("c/main.c", "c/list.h"),
        ("cpp/shape.cpp", "cpp/shape.hpp"),
        ("csharp/Program.cs", "csharp/Models/Order.cs"),
        ("go/main.go", "go/store/store.go"),
        ("java/com/example/App.java", "java/com/example/model/Item.java"),
        ("js/index.js", "js/math.js"),
        ("py/app/main.py", "py/app/models.py"),
        ("py/app/main.py", "py/app/util.py"),
        ("ruby/app.rb", "ruby/lib/greeter.rb"),
        ("rust/src/main.rs", "rust/src/shapes.rs"),
        ("ts/view.tsx", "ts/shapes.ts"),
    }
    assert consolidated["entry_points"] == [
        "c/main.c",
        "csharp/Program.cs",
        "go/main.go",
        "java/com/example/App.java",
        "py/app/main.py",
        "ruby/app.rb",
        "rust/src/main.rs",
    ]
    central = consolidated["central_symbols"]
    assert len(central) == 15
    # Imported-and-used definitions rank first: the C struct used by two files, the Java class.
    assert [(s["file"], s["qualified_name"]) for s in central[:2]] == [
        ("c/list.h", "node"),
        ("java/com/example/model/Item.java", "Item"),
    ]
    assert {"User", "Circle", "add", "Store"} <= {s["qualified_name"] for s in central}
    assert consolidated["languages"] == {
        "c": 3, "cpp": 2, "csharp": 2, "go": 2, "java": 2, "javascript": 2, "python": 4, "ruby": 2, "rust": 2,
        "tsx": 1, "typescript": 1,
    }  # fmt: skip


def test_a_shebang_script_without_extension_is_detected_and_is_an_entry_point() -> None:
    result = engine.run([SAMPLE], ["tools/run"], "structure")
    (script,) = result["files"]
    assert (script["language"], script["entry_point"]) == ("python", True)
    assert [s["name"] for s in script["symbols"]] == ["cli"]


def test_unsupported_language_is_an_error_entry_not_a_crash() -> None:
    result = engine.run([SAMPLE], ["notes.txt", "py/app/util.py"], "structure")
    assert [f["path"] for f in result["files"]] == ["py/app/util.py"]
    assert [(e["path"], e["reason"]) for e in result["errors"]] == [("notes.txt", "unsupported_language")]


def test_syntax_analysis_reports_parse_errors_with_line_and_column(tmp_path: Any) -> None:
    (tmp_path / "broken.py").write_text("def ok():\n    return 1\n\ndef broken(:\n    pass\n")
    result = engine.run([tmp_path], ["broken.py"], "syntax")
    (info,) = result["files"]
    assert info["error_count"] >= 1
    first = info["syntax_errors"][0]
    assert (first["line"], first["column"]) == (4, 12)
    assert info["lines"] == {"total": 5, "code": 4, "comment": 0, "blank": 1}
    assert "symbols" not in info and "imports" not in info


@pytest.mark.parametrize(
    ("analysis_type", "present", "absent"),
    [
        ("syntax", {"syntax_errors"}, {"symbols", "imports"}),
        ("structure", {"symbols"}, {"syntax_errors", "imports"}),
        ("dependencies", {"imports"}, {"symbols", "syntax_errors"}),
        ("full", {"symbols", "imports", "syntax_errors"}, set()),
    ],
)
def test_each_analysis_type_returns_its_sections(analysis_type: str, present: set[str], absent: set[str]) -> None:
    (info,) = engine.run([SAMPLE], ["py/app/main.py"], analysis_type)["files"]
    assert present <= set(info)
    assert not absent & set(info)
