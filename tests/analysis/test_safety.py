"""Reading the server's disk on a client's word: every hostile path gets its reason code, through
the real worker processes, and a misbehaving worker never takes the caller down."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from handoff.analysis.runner import AnalyzerLimits, SubprocessAnalyzer
from handoff.errors import Forbidden, Unavailable

pytestmark = pytest.mark.anyio

CRASHING_WORKER = str(Path(__file__).parent / "crashing_worker.py")
GOOD = "def fine():\n    return 1\n"


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """tmp/proj (the root), tmp/outside, and tmp/proj-evil (a sibling sharing the root's prefix)."""
    root = tmp_path / "proj"
    (root / "sub").mkdir(parents=True)
    (root / "good.py").write_text(GOOD)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.py").write_text("SECRET = 1\n")
    (tmp_path / "proj-evil").mkdir()
    (tmp_path / "proj-evil" / "secret.py").write_text("SECRET = 2\n")
    return root


async def analyse(root: Path, paths: list[str], **kwargs: Any) -> dict[str, Any]:
    prefix = kwargs.pop("command_prefix", ())
    async with SubprocessAnalyzer([root], AnalyzerLimits(**kwargs), command_prefix=prefix) as analyzer:
        with anyio.fail_after(60):
            return await analyzer.analyze(paths, "structure")


def reasons(result: dict[str, Any]) -> dict[str, str]:
    return {e["path"]: e["reason"] for e in result["errors"]}


async def test_dot_dot_traversal_is_outside_roots(layout: Path) -> None:
    result = await analyse(layout, ["../outside/secret.py", "sub/../../outside/secret.py", "good.py"])
    assert reasons(result) == {"../outside/secret.py": "outside_roots", "sub/../../outside/secret.py": "outside_roots"}
    assert [f["path"] for f in result["files"]] == ["good.py"]


async def test_absolute_path_outside_roots_is_refused(layout: Path) -> None:
    secret = str(layout.parent / "outside" / "secret.py")
    result = await analyse(layout, [secret, "/etc/passwd"])
    assert reasons(result) == {secret: "outside_roots", "/etc/passwd": "outside_roots"}
    assert result["files"] == []


async def test_sibling_directory_sharing_the_roots_prefix_is_outside(layout: Path) -> None:
    sibling = str(layout.parent / "proj-evil" / "secret.py")
    result = await analyse(layout, [sibling, "../proj-evil/secret.py"])
    assert reasons(result) == {sibling: "outside_roots", "../proj-evil/secret.py": "outside_roots"}


async def test_symlink_and_symlink_chain_out_of_the_root_are_refused(layout: Path) -> None:
    (layout / "link.py").symlink_to(layout.parent / "outside" / "secret.py")
    (layout / "hop2.py").symlink_to(layout.parent / "outside")  # a directory symlink mid-chain
    (layout / "hop1.py").symlink_to(layout / "hop2.py")
    (layout / "chain.py").symlink_to(layout / "hop1.py")
    (layout / "sub" / "inner.py").symlink_to("../../outside/secret.py")
    result = await analyse(layout, ["link.py", "chain.py", "hop1.py/secret.py", "sub/inner.py"])
    assert reasons(result) == {
        "link.py": "outside_roots",
        "chain.py": "outside_roots",
        "hop1.py/secret.py": "outside_roots",
        "sub/inner.py": "outside_roots",
    }


async def test_symlink_inside_the_root_is_followed(layout: Path) -> None:
    (layout / "alias.py").symlink_to(layout / "good.py")
    result = await analyse(layout, ["alias.py"])
    assert result["errors"] == []
    assert [f["path"] for f in result["files"]] == ["good.py"]


async def test_a_directory_walk_skips_symlinks_that_leave_the_root(layout: Path) -> None:
    (layout / "sub" / "escape.py").symlink_to(layout.parent / "outside" / "secret.py")
    (layout / "sub" / "ok.py").write_text(GOOD)
    result = await analyse(layout, ["sub"])
    assert [f["path"] for f in result["files"]] == ["sub/ok.py"]


async def test_symlink_loop_is_reported(layout: Path) -> None:
    (layout / "loop_a.py").symlink_to(layout / "loop_b.py")
    (layout / "loop_b.py").symlink_to(layout / "loop_a.py")
    result = await analyse(layout, ["loop_a.py", "good.py"])
    assert reasons(result) == {"loop_a.py": "symlink_loop"}
    assert [f["path"] for f in result["files"]] == ["good.py"]


async def test_fifo_is_refused_without_blocking(layout: Path) -> None:
    os.mkfifo(layout / "pipe.py")  # nobody ever writes: a blocking open would hang forever
    result = await analyse(layout, ["pipe.py", "good.py"], max_seconds=20)
    assert reasons(result) == {"pipe.py": "not_regular_file"}
    assert [f["path"] for f in result["files"]] == ["good.py"]


async def test_dev_zero_is_refused_outside_roots_and_as_a_device_inside_them(layout: Path) -> None:
    assert reasons(await analyse(layout, ["/dev/zero"])) == {"/dev/zero": "outside_roots"}
    async with SubprocessAnalyzer([layout, Path("/dev")]) as analyzer:
        with anyio.fail_after(60):
            result = await analyzer.analyze(["/dev/zero", "zero"], "structure")
    assert reasons(result) == {"/dev/zero": "not_regular_file", "zero": "not_regular_file"}


async def test_ten_gigabyte_sparse_file_is_too_large_without_being_read(layout: Path) -> None:
    with open(layout / "huge.py", "wb") as f:
        f.truncate(10 * 1024**3)
    result = await analyse(layout, ["huge.py", "good.py"])
    assert reasons(result) == {"huge.py": "too_large"}
    assert "10737418240 bytes" in result["errors"][0]["message"]


async def test_binary_file_is_refused(layout: Path) -> None:
    (layout / "blob.py").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)))
    assert reasons(await analyse(layout, ["blob.py"])) == {"blob.py": "binary"}


async def test_invalid_utf8_is_refused(layout: Path) -> None:
    (layout / "latin.py").write_bytes(b"name = 'caf\xe9'\n")
    result = await analyse(layout, ["latin.py"])
    assert reasons(result) == {"latin.py": "invalid_encoding"}
    assert "byte offset 11" in result["errors"][0]["message"]


async def test_unreadable_file_is_permission_denied(layout: Path) -> None:
    (layout / "locked.py").write_text(GOOD)
    (layout / "locked.py").chmod(0)
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        # Root reads mode-000 files; run the worker without the capabilities that allow it.
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and setpriv is not available to drop CAP_DAC_OVERRIDE")
        prefix = (setpriv, "--bounding-set=-dac_override,-dac_read_search", "--")
    result = await analyse(layout, ["locked.py", "good.py"], command_prefix=prefix)
    assert reasons(result) == {"locked.py": "permission_denied"}
    assert [f["path"] for f in result["files"]] == ["good.py"]


async def test_missing_file_and_empty_path_get_their_reasons(layout: Path) -> None:
    result = await analyse(layout, ["nope.py", "", "a\x00b.py"])
    assert reasons(result) == {"nope.py": "not_found", "": "invalid_path", "a\x00b.py": "invalid_path"}


async def test_files_over_the_per_call_limits_are_refused_one_by_one(layout: Path) -> None:
    for name in ("a.py", "b.py", "c.py"):
        (layout / name).write_text(GOOD * 10)
    result = await analyse(layout, ["a.py", "b.py", "c.py"], max_files=2)
    assert reasons(result) == {"c.py": "too_many_files"}
    result = await analyse(layout, ["a.py", "b.py", "c.py"], max_total_bytes=len(GOOD) * 15)
    assert reasons(result) == {"b.py": "total_bytes_exceeded", "c.py": "total_bytes_exceeded"}
    result = await analyse(layout, ["a.py"], max_file_bytes=len(GOOD))
    assert reasons(result) == {"a.py": "too_large"}


async def test_deeply_nested_input_and_a_huge_line_are_analysed_without_harm(layout: Path) -> None:
    (layout / "nested.py").write_text("x = " + "(" * 100_000 + "1" + ")" * 100_000 + "\n")
    (layout / "oneline.js").write_text("var a = [" + "1," * 400_000 + "1]; function tail() {}\n")
    result = await analyse(layout, ["nested.py", "oneline.js"])
    assert result["errors"] == []
    assert [s["name"] for s in result["files"][1]["symbols"]] == ["tail"]


async def test_a_parse_over_its_time_budget_is_stopped(layout: Path) -> None:
    (layout / "big.js").write_text("var a = [" + "[1, {b: 2}]," * 60_000 + "];\n")
    result = await analyse(layout, ["big.js", "good.py"], parse_seconds=0.0)
    assert reasons(result)["big.js"] == "parse_timeout"


async def test_a_worker_crash_costs_only_the_file_it_was_on(layout: Path) -> None:
    for name in ("a.py", "boom.py", "c.py"):
        (layout / name).write_text(GOOD)
    prefix = (sys.executable, CRASHING_WORKER, "crash", "--")
    result = await analyse(layout, ["a.py", "boom.py", "c.py"], command_prefix=prefix)
    assert [f["path"] for f in result["files"]] == ["a.py"]
    assert reasons(result) == {"boom.py": "parser_crashed", "c.py": "not_analysed"}
    assert "SIGABRT" in result["errors"][0]["message"]
    assert result["consolidated"]["files"] == 1


async def test_a_hanging_worker_is_killed_at_the_deadline(layout: Path) -> None:
    for name in ("a.py", "boom.py", "c.py"):
        (layout / name).write_text(GOOD)
    prefix = (sys.executable, CRASHING_WORKER, "hang", "--")
    with anyio.fail_after(30):
        result = await analyse(
            layout, ["a.py", "boom.py", "c.py"], command_prefix=prefix, max_seconds=1.0, grace_seconds=1.0
        )
    assert [f["path"] for f in result["files"]] == ["a.py"]
    assert reasons(result) == {"boom.py": "time_limit", "c.py": "time_limit"}
    # ...and the next call works.
    assert [f["path"] for f in (await analyse(layout, ["c.py"]))["files"]] == ["c.py"]


async def test_a_worker_that_cannot_start_is_unavailable(layout: Path) -> None:
    prefix = (sys.executable, "-c", "import sys; sys.exit(3)")
    async with SubprocessAnalyzer([layout], command_prefix=prefix) as analyzer:
        with anyio.fail_after(30), pytest.raises(Unavailable):
            await analyzer.analyze(["good.py"], "structure")


async def test_without_configured_roots_a_server_started_from_the_filesystem_root_reads_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir("/")
    analyzer = SubprocessAnalyzer([])
    try:
        with pytest.raises(Forbidden, match="HANDOFF_ANALYSIS_ROOTS"):
            await analyzer.analyze(["etc/passwd"], "structure")
    finally:
        await analyzer.aclose()
    assert SubprocessAnalyzer([Path("/")]).roots == [Path("/")]  # set explicitly, it is honoured
