"""Warm workers: kept between calls, shared by large calls, capped, replaced when they die, and
never left behind when the analyzer, or the process that owns it, stops."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from handoff.analysis import engine
from handoff.analysis.runner import AnalyzerLimits, SubprocessAnalyzer
from handoff.errors import Unavailable
from tests.analysis.conftest import SAMPLE

pytestmark = pytest.mark.anyio

CRASHING_WORKER = str(Path(__file__).parent / "crashing_worker.py")


@pytest.fixture
async def analyzer() -> AsyncIterator[SubprocessAnalyzer]:
    async with SubprocessAnalyzer([SAMPLE]) as a:
        yield a


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """40 Python files of ~4 KiB that import each other: large enough to be shared by two workers."""
    for n in range(40):
        body = "".join(
            f"def f{n}_{k}(x):\n    '''Doc {k}.'''\n    return m{(n + 1) % 40}.f{k}(x) + {k}\n\n" for k in range(60)
        )
        (tmp_path / f"m{n}.py").write_text(f"import m{(n + 1) % 40}\n\n\nclass C{n}:\n    pass\n\n\n{body}")
    return tmp_path


@contextmanager
def exit_watch(pids: list[int]) -> Iterator[list[int]]:
    """Process-exit handles for `pids`, opened now (so a later reuse of a pid cannot confuse them)."""
    fds = [os.pidfd_open(pid) for pid in pids]
    try:
        yield fds
    finally:
        for fd in fds:
            os.close(fd)


async def exited(fds: list[int], seconds: float = 10) -> None:
    with anyio.fail_after(seconds):
        for fd in fds:
            await anyio.wait_readable(fd)


async def analyse(a: SubprocessAnalyzer, paths: list[str], analysis_type: str = "structure") -> dict[str, Any]:
    with anyio.fail_after(60):
        return await a.analyze(paths, analysis_type)


async def test_one_warm_worker_serves_call_after_call(analyzer: SubprocessAnalyzer) -> None:
    first = await analyse(analyzer, ["py/app/models.py"])
    lead = next(pid for pid, jobs in analyzer.worker_jobs.items() if jobs == 1)
    for _ in range(5):
        assert await analyse(analyzer, ["py/app/models.py"]) == first
    assert analyzer.worker_jobs == {lead: 6}  # small calls never needed a second worker


async def test_a_large_call_without_a_free_helper_starts_one_for_the_next(project: Path) -> None:
    async with SubprocessAnalyzer([project]) as a:
        await analyse(a, ["."])
        assert len(a.worker_pids) == 2


async def test_results_match_the_in_process_analysis(analyzer: SubprocessAnalyzer) -> None:
    for analysis_type in ("syntax", "dependencies", "structure", "full"):
        assert await analyse(analyzer, ["."], analysis_type) == engine.run([SAMPLE], ["."], analysis_type)


async def test_a_large_call_is_shared_by_two_workers_with_the_same_result(project: Path) -> None:
    async with SubprocessAnalyzer([project]) as a:
        await a.start()
        before = a.worker_jobs
        result = await analyse(a, ["."], "full")
        after = a.worker_jobs
    assert set(before) == set(after) and all(after[pid] == before[pid] + 1 for pid in before)
    assert result == engine.run([project], ["."], "full")
    assert len(result["files"]) == 40 and result["errors"] == []


async def test_a_shared_call_spends_the_byte_budget_in_plan_order(project: Path) -> None:
    size = (project / "m0.py").stat().st_size
    limits = AnalyzerLimits(max_total_bytes=size * 25 + 10)
    async with SubprocessAnalyzer([project], limits) as a:
        await a.start()
        shared = await analyse(a, ["."])
        assert list(a.worker_jobs.values()) == [1, 1]  # one job on each worker
    alone = engine.run([project], ["."], "structure", engine.EngineLimits(max_total_bytes=size * 25 + 10))
    assert shared == alone
    assert {e["reason"] for e in shared["errors"]} == {"total_bytes_exceeded"}
    assert 20 <= len(shared["files"]) <= 25 and len(shared["errors"]) == 40 - len(shared["files"])


async def test_a_crash_in_a_shared_call_costs_only_that_workers_unfinished_files(project: Path) -> None:
    (project / "m7.py").rename(project / "boom7.py")
    prefix = (sys.executable, CRASHING_WORKER, "crash", "--")
    async with SubprocessAnalyzer([project], command_prefix=prefix) as a:
        await a.start()
        result = await analyse(a, ["."])
        reasons = {e["path"]: e["reason"] for e in result["errors"]}
        assert reasons.pop("boom7.py") == "parser_crashed"
        assert set(reasons.values()) <= {"not_analysed"}
        assert len(result["files"]) + len(reasons) == 39
        assert len(result["files"]) >= 10  # at least the other worker's share (a third or more of the files)
        # ...and a fresh worker takes the dead one's place.
        assert len((await analyse(a, ["m0.py", "m1.py"]))["files"]) == 2


async def test_a_worker_killed_while_idle_is_replaced(analyzer: SubprocessAnalyzer) -> None:
    await analyse(analyzer, ["py/app/util.py"])
    pids = analyzer.worker_pids
    with exit_watch(pids) as fds:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        await exited(fds)
    result = await analyse(analyzer, ["py/app/util.py"])
    assert [f["path"] for f in result["files"]] == ["py/app/util.py"]
    assert not set(analyzer.worker_pids) & set(pids)


async def test_a_hung_worker_is_killed_and_replaced(tmp_path: Path) -> None:
    for name in ("a.py", "boom.py"):
        (tmp_path / name).write_text("def f():\n    return 1\n")
    prefix = (sys.executable, CRASHING_WORKER, "hang", "--")
    limits = AnalyzerLimits(max_seconds=1.0, grace_seconds=1.0)
    async with SubprocessAnalyzer([tmp_path], limits, command_prefix=prefix) as a:
        await a.start()
        before = a.worker_pids
        result = await analyse(a, ["a.py", "boom.py"])
        assert {e["path"]: e["reason"] for e in result["errors"]} == {"boom.py": "time_limit"}
        (hung,) = set(before) - set(a.worker_pids)  # killed and reaped...
        with pytest.raises(ProcessLookupError):
            os.kill(hung, 0)
        after = await analyse(a, ["a.py"])  # ...and the pool serves on
        assert [f["path"] for f in after["files"]] == ["a.py"]
        await a.start()  # back to full strength
        assert len(a.worker_pids) == 2 and hung not in a.worker_pids


async def test_workers_run_under_their_limits(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    async with SubprocessAnalyzer([tmp_path], AnalyzerLimits(memory_bytes=512 * 1024 * 1024)) as a:
        await analyse(a, ["a.py"])
        lead = next(pid for pid, jobs in a.worker_jobs.items() if jobs == 1)
        limits = {
            line[:26].strip(): line[26:].split() for line in Path(f"/proc/{lead}/limits").read_text().splitlines()
        }
    assert limits["Max address space"][:2] == [str(512 * 1024 * 1024)] * 2
    assert limits["Max file size"][:2] == ["0", "0"]
    assert limits["Max core file size"][:2] == ["0", "0"]
    soft, hard = (int(v) for v in limits["Max cpu time"][:2])
    assert soft <= 30 + 5 + 2 and hard == 3600  # this call's allowance, under a lifetime cap


async def test_concurrent_calls_share_the_pool_without_exceeding_it(analyzer: SubprocessAnalyzer) -> None:
    results: list[dict[str, Any]] = []

    async def one(path: str) -> None:
        results.append(await analyse(analyzer, [path]))

    async with anyio.create_task_group() as tg:
        for path in ["py/app/util.py", "py/app/models.py", "go/main.go", "js/index.js", "c/list.c", "ruby/app.rb"]:
            tg.start_soon(one, path)
    assert sorted(r["files"][0]["path"] for r in results) == sorted(
        ["py/app/util.py", "py/app/models.py", "go/main.go", "js/index.js", "c/list.c", "ruby/app.rb"]
    )
    assert len(analyzer.worker_pids) == 2


async def test_calls_while_the_workers_start_are_served_and_the_pool_keeps_its_size(
    analyzer: SubprocessAnalyzer,
) -> None:
    paths = ["py/app/util.py", "py/app/models.py", "go/main.go", "js/index.js"]
    results: list[dict[str, Any]] = []

    async def one(path: str) -> None:
        results.append(await analyse(analyzer, [path]))

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(analyzer.start)
            for path in paths:
                tg.start_soon(one, path)
    assert sorted(r["files"][0]["path"] for r in results) == sorted(paths)
    assert len(analyzer.worker_pids) == 2


async def test_closing_the_analyzer_stops_every_worker() -> None:
    a = SubprocessAnalyzer([SAMPLE])
    await a.start()
    await analyse(a, ["."])
    pids = a.worker_pids
    assert len(pids) == 2
    with exit_watch(pids) as fds:
        await a.aclose()
        await exited(fds, seconds=0.5)  # reaped by aclose: nothing to wait for
    assert a.worker_pids == []
    with pytest.raises(Unavailable):
        await a.analyze(["."], "structure")


async def test_a_dropped_analyzer_does_not_leave_its_workers_running() -> None:
    a = SubprocessAnalyzer([SAMPLE])
    await analyse(a, ["py/app/util.py"])
    pids = a.worker_pids
    with exit_watch(pids) as fds:
        del a
        gc.collect()
        await exited(fds, seconds=5)


@pytest.mark.parametrize("how", ["killed", "exits"])
async def test_workers_stop_with_the_process_that_owns_them(how: str) -> None:
    """The server killed (workers see their stdin close) or exiting without closing the analyzer."""
    script = (
        "import sys, anyio\n"
        "from pathlib import Path\n"
        "from handoff.analysis.runner import SubprocessAnalyzer\n"
        "async def main():\n"
        f"    a = SubprocessAnalyzer([Path({str(SAMPLE)!r})])\n"
        "    await a.start()\n"
        "    await a.analyze(['py/app/util.py'], 'structure')\n"
        "    print(*a.worker_pids, flush=True)\n"
        "    sys.stdin.readline()\n"
        "anyio.run(main)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert owner.stdin is not None and owner.stdout is not None
    try:
        with anyio.fail_after(30):
            line = await anyio.to_thread.run_sync(owner.stdout.readline)
        pids = [int(p) for p in line.split()]
        assert len(pids) == 2
        with exit_watch(pids) as fds:
            if how == "killed":
                owner.kill()
            else:
                owner.stdin.write(b"\n")
                owner.stdin.flush()
            await exited(fds)
    finally:
        owner.kill()
        owner.wait()
        owner.stdin.close()
        owner.stdout.close()
