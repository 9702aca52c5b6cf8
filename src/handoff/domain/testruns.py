"""Reading test-runner output the way agents paste it: which tests ran, how each ended, the totals.

Agents run tests through a shell and the output reaches us as plain text, often with ANSI colour
codes, sometimes cut. We recognise the runners people use — pytest (verbose, quiet, short summary),
unittest and Django, sympy's bin/test, jest/vitest/mocha, go test, cargo test, JUnit (Maven
surefire, Gradle), RSpec, PHPUnit, dotnet test, TAP — line by line, without trusting any single
line too much: a test named `test_error` that passed is still a pass, `0 failed` is not a failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum


class TestStatus(StrEnum):
    __test__ = False  # not a pytest test class
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


BAD = frozenset({TestStatus.FAILED, TestStatus.ERROR})


@dataclass(frozen=True, slots=True)
class TestOutcome:
    __test__ = False
    test: str
    status: TestStatus
    detail: str = ""


@dataclass(slots=True)
class TestRun:
    """What one piece of output says about a test run."""

    __test__ = False

    runner: str
    outcomes: dict[str, TestOutcome] = field(default_factory=dict)
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    summary: str = ""
    has_counts: bool = False

    @property
    def green(self) -> bool:
        """True when the run reports tests and no failure or error anywhere."""
        if any(o.status in BAD for o in self.outcomes.values()):
            return False
        if self.has_counts:
            return self.failed == 0 and self.errors == 0 and self.passed > 0
        return bool(self.outcomes) and all(o.status is not TestStatus.SKIPPED for o in self.outcomes.values())

    @property
    def bad_count(self) -> int:
        listed = sum(1 for o in self.outcomes.values() if o.status in BAD)
        return max(self.failed + self.errors, listed)

    def note(self, test: str, status: TestStatus, detail: str = "") -> None:
        test = test.strip()[:300]
        if not test:
            return
        earlier = self.outcomes.pop(test, None)
        if earlier is not None and not detail:
            detail = earlier.detail
        self.outcomes[test] = TestOutcome(test, status, detail.strip()[:300])


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
MAX_SCAN_CHARS = 400_000

# --- pytest -----------------------------------------------------------------------------------
_PYTEST_WORDS = "PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS"
_PYTEST_VERBOSE = re.compile(rf"^(\S+\.py::\S.*?)\s+({_PYTEST_WORDS})(?:\s+\[\s*\d+%\])?\s*$")
_PYTEST_XDIST = re.compile(rf"^\[gw\d+\]\s+\[\s*\d+%\]\s+({_PYTEST_WORDS})\s+(\S+::\S.*?)\s*$")
_PYTEST_SHORT = re.compile(rf"^({_PYTEST_WORDS})\s+(\S+::\S+(?:\[[^\]]*\])?|\S+\.py)(?:\s+-\s+(.*))?$")
_PYTEST_COUNTS = re.compile(
    r"^=*\s*((?:\d+ (?:failed|passed|skipped|deselected|xfailed|xpassed|errors?|warnings?|rerun|error)"
    r"(?:, )?)+)\s+in\s+[\d.]+\s*s(?:econds)?\b"
)
_PYTEST_NO_TESTS = re.compile(r"^=*\s*no tests ran in [\d.]+s")
_COUNT_WORD = re.compile(r"(\d+) (failed|passed|skipped|deselected|xfailed|xpassed|errors?|error|rerun)")
_SECTION_HEADER = re.compile(r"^_{3,} (.+?) _{3,}$")
_SECTION_BANNER = re.compile(r"^={3,} ?([A-Za-z ]+?) ?={3,}$")
_PYTEST_E_LINE = re.compile(r"^E\s{2,}(\S.*)$")
_FRAME_LINE = re.compile(r'^\s*File "[^"]+", line (\d+), in \S+')

# --- unittest / Django / sympy ------------------------------------------------------------------
_UNITTEST_VERBOSE = re.compile(
    r"^(test\w*) \(([\w.]+)\)(?:\s*\n?.*?)? \.\.\. "
    r"(ok|FAIL|ERROR|skipped\b.*|expected failure|unexpected success)\s*$"
)
_UNITTEST_NAME_ONLY = re.compile(r"^(test\w*) \(([\w.]+)\)\s*$")
_UNITTEST_RESULT_ONLY = re.compile(r"^.* \.\.\. (ok|FAIL|ERROR|skipped\b.*|expected failure|unexpected success)\s*$")
_UNITTEST_HEADER = re.compile(r"^(FAIL|ERROR): (test\w*) \(([\w.]+)\)")
_UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in [\d.]+s")
_UNITTEST_OK = re.compile(r"^OK(?: \((.*)\))?\s*$")
_UNITTEST_FAILED = re.compile(r"^FAILED \((.*)\)\s*$")
_SYMPY_LINE = re.compile(r"^(test_\w+) (ok|F|E|f|s|X|w)\s*$")
_SYMPY_HEADER = re.compile(r"^_{3,} (\S+\.py:test_\w+) _{3,}$")
_SYMPY_SUMMARY = re.compile(r"^=+ tests finished: (.*?) in [\d.]+ seconds =+$")

# --- JavaScript: jest, vitest, mocha -------------------------------------------------------------
_JS_PASS = re.compile(r"^\s*(?:✓|✔|√)\s+(.+?)(?:\s+\(\d+(?:\.\d+)?\s*m?s\)|\s+\d+ms)?\s*$")
_JS_FAIL = re.compile(r"^\s*(?:✕|✗|×|✖)\s+(.+?)(?:\s+\(\d+(?:\.\d+)?\s*m?s\)|\s+\d+ms)?\s*$")
_JS_SKIP = re.compile(r"^\s*(?:○|↓)\s+(?:skipped\s+)?(.+?)\s*$")
_JS_FILE = re.compile(r"^\s*(PASS|FAIL)\s+(\S+\.(?:[cm]?[jt]sx?|vue|svelte))\b")
_JEST_BULLET = re.compile(r"^\s*● (.+? › .+?)\s*$")
_JEST_TESTS = re.compile(r"^\s*Tests:\s+(.*\d+ total)\s*$")
_VITEST_TESTS = re.compile(r"^\s*Tests\s+(.*\(\d+\))\s*$")
_MOCHA_PASSING = re.compile(r"^\s*(\d+) passing\b")
_MOCHA_FAILING = re.compile(r"^\s*(\d+) failing\b")
_MOCHA_PENDING = re.compile(r"^\s*(\d+) pending\b")
_MOCHA_NUMBERED = re.compile(r"^\s{2,}(\d+)\) (.+?):?\s*$")

# --- go, cargo -------------------------------------------------------------------------------
_GO_RESULT = re.compile(r"^\s*--- (PASS|FAIL|SKIP): (\S+) \([\d.]+s\)")
_GO_PKG = re.compile(r"^(ok|FAIL|---)\s+(\S+)\s+(?:[\d.]+s|\(cached\)|\[[^\]]+\])")
_CARGO_LINE = re.compile(r"^test (\S+)(?: - should panic)? \.\.\. (ok|FAILED|ignored|bench)\b")
_CARGO_RESULT = re.compile(r"^test result: (ok|FAILED)\. (\d+) passed; (\d+) failed; (\d+) ignored")

# --- JVM: Maven surefire, Gradle -------------------------------------------------------------------
_SUREFIRE_TOTAL = re.compile(r"^(?:\[\w+\]\s+)?Tests run: (\d+), Failures: (\d+), Errors: (\d+), Skipped: (\d+)(.*)$")
_SUREFIRE_OLD = re.compile(r"^(?:\[\w+\]\s+)?(\w+)\(([\w.$]+)\)\s+Time elapsed: .*<<< (FAILURE|ERROR)!")
_SUREFIRE_NEW = re.compile(r"^(?:\[\w+\]\s+)?([\w.$]+\.\w+)\s+Time elapsed: .*<<< (FAILURE|ERROR)!")
_SUREFIRE_LIST = re.compile(r"^\[ERROR\]\s{2,}([\w.$]+\.\w+):?(\d+)?\s*(.*)$")
_GRADLE_LINE = re.compile(r"^\s*([\w.$]+) > (.+?) (PASSED|FAILED|SKIPPED)\s*$")
_GRADLE_SUMMARY = re.compile(r"^(\d+) tests? completed(?:, (\d+) failed)?(?:, (\d+) skipped)?")

# --- RSpec, PHPUnit, dotnet, TAP -----------------------------------------------------------------
_RSPEC_FAILED = re.compile(r"^rspec (\./\S+:\d+) # (.+)$")
_RSPEC_SUMMARY = re.compile(r"^(\d+) examples?, (\d+) failures?(?:, (\d+) pending)?")
_PHPUNIT_OK = re.compile(r"^OK \((\d+) tests?, \d+ assertions?\)")
_PHPUNIT_BAD = re.compile(r"^Tests: (\d+), Assertions: \d+(.*)\.$")
_PHPUNIT_NUMBERED = re.compile(r"^\d+\) ([\w\\]+::\w+)")
_DOTNET_LINE = re.compile(r"^\s*(Passed|Failed|Skipped|X|✓|√)\s+([\w.]+(?:\(.*\))?)(?: \[[\d.,<> ]+m?s\])?\s*$")
_DOTNET_TOTAL = re.compile(r"^\s*(Total tests|Passed|Failed|Skipped):\s+(\d+)\s*$")
_XUNIT_FAIL = re.compile(r"^\s*([\w.]+(?:\(.*)?)\s*\[FAIL\]\s*$")
_XUNIT_TOTAL = re.compile(r"Total: (\d+), Errors: (\d+), Failed: (\d+), Skipped: (\d+)")
_RSPEC_DOC = re.compile(r"^\s*(.+?) \((FAILED - \d+|PENDING: .*)\)\s*$")
_DOTNET_SUMMARY = re.compile(
    r"^(Passed|Failed)!\s+-\s+Failed:\s+(\d+), Passed:\s+(\d+), Skipped:\s+(\d+), Total:\s+(\d+)"
)
_TAP_LINE = re.compile(r"^\s*(not ok|ok) \d+(?: -)? (.+?)(?:\s+#\s*(SKIP|TODO)\b.*)?$")
_TAP_COUNT = re.compile(r"^# (pass|fail|tests) +(\d+)\s*$")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text) if "\x1b" in text else text


# Every runner's output holds at least one of these; most tool output (file contents, listings)
# holds none, and is answered without running the per-line patterns.
_SIGNS = re.compile(
    r"PASS|FAIL|passed|failed|passing|failing|Ran \d|tests finished|test result|Tests run|examples?,|"
    r"[✓✕×√✔✗○]|\bok\b|\bOK\b|ERROR|Passed|Failed|Tests:|Test Files|tests? completed|Skipped"
)


def parse_test_output(text: str) -> TestRun | None:
    """The test run this output reports, or None when it is not test output."""
    if not _SIGNS.search(text, 0, MAX_SCAN_CHARS) and (
        len(text) <= MAX_SCAN_CHARS or not _SIGNS.search(text, len(text) - MAX_SCAN_CHARS)
    ):
        return None
    if len(text) > MAX_SCAN_CHARS:
        # The verdicts sit at the end; the start names what ran.
        text = text[: MAX_SCAN_CHARS // 4] + "\n" + text[-(MAX_SCAN_CHARS * 3 // 4) :]
    lines = strip_ansi(text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    reader = _Reader(lines)
    run = reader.read()
    if run is None or (not run.outcomes and not run.has_counts):
        return None
    if run.runner == "jest" and not reader.js_evidence:
        # ✓ and ✕ alone are every build tool's ticks ("✓ Ready in 1.2s"): not a test run.
        return None
    return run


class _Reader:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.run: TestRun | None = None
        self.section = ""
        self.js_evidence = False  # a PASS/FAIL file line, a ● failure or a Tests: summary

    def start(self, runner: str) -> TestRun:
        if self.run is None:
            self.run = TestRun(runner=runner)
        return self.run

    def counts(self, runner: str, summary: str, *, passed: int, failed: int, errors: int = 0, skipped: int = 0) -> None:
        run = self.start(runner)
        run.has_counts = True
        run.passed, run.failed, run.errors, run.skipped = passed, failed, errors, skipped
        run.summary = summary.strip(" =")[:200]

    def read(self) -> TestRun | None:
        pending_unittest: tuple[str, str] | None = None
        for index, raw in enumerate(self.lines):
            line = raw.rstrip()
            if not line:
                continue
            stripped = line.strip()
            if self._pytest(line, index):
                continue
            if self._unittest(line, pending_unittest):
                pending_unittest = None
                continue
            if match := _UNITTEST_NAME_ONLY.match(line):
                pending_unittest = (match.group(1), match.group(2))
                continue
            if self._javascript(line, stripped) or self._go_cargo(line) or self._jvm(line) or self._others(line):
                continue
        if self.run is not None:
            _merge_short_ids(self.run)
        return self.run

    # Each reader returns True when it consumed the line.
    def _pytest(self, line: str, index: int) -> bool:
        if banner := _SECTION_BANNER.match(line):
            self.section = banner.group(1).strip().upper()
            return False
        if match := _PYTEST_VERBOSE.match(line):
            self.start("pytest").note(match.group(1), _pytest_status(match.group(2)))
            return True
        if match := _PYTEST_XDIST.match(line):
            self.start("pytest").note(match.group(2), _pytest_status(match.group(1)))
            return True
        if match := _PYTEST_SHORT.match(line):
            self.start("pytest").note(match.group(2), _pytest_status(match.group(1)), match.group(3) or "")
            return True
        if match := _PYTEST_COUNTS.match(line):
            found = {
                word.rstrip("s") if word.startswith("error") else word: int(n) for n, word in _COUNT_WORD.findall(line)
            }
            self.counts(
                "pytest",
                line,
                passed=found.get("passed", 0) + found.get("xpassed", 0),
                failed=found.get("failed", 0),
                errors=found.get("error", 0),
                skipped=found.get("skipped", 0) + found.get("xfailed", 0),
            )
            return True
        if _PYTEST_NO_TESTS.match(line):
            self.counts("pytest", line, passed=0, failed=0)
            return True
        if (match := _SYMPY_HEADER.match(line)) or (match := _SECTION_HEADER.match(line)):
            name = match.group(1)
            if self.section in {"FAILURES", "ERRORS"} or _SYMPY_HEADER.match(line):
                status = (
                    TestStatus.ERROR if name.startswith("ERROR ") or self.section == "ERRORS" else TestStatus.FAILED
                )
                name = re.sub(r"^ERROR (?:at|collecting) (?:setup of |teardown of )?", "", name)
                self.start("sympy" if ":test_" in name and ".py:" in name else "pytest").note(
                    name, status, self._first_e_line(index)
                )
                return True
        return False

    def _first_e_line(self, index: int) -> str:
        """What a failure section says went wrong: pytest's first `E` line, else the traceback's end."""
        section: list[str] = []
        for line in self.lines[index + 1 : index + 120]:
            if _SECTION_HEADER.match(line) or _SECTION_BANNER.match(line) or line.startswith("=== "):
                break
            if match := _PYTEST_E_LINE.match(line):
                return match.group(1)
            section.append(line)
        frame = None
        for position, line in enumerate(section):
            if match := _FRAME_LINE.match(line):
                frame = (match, section[position + 1].strip() if position + 1 < len(section) else "")
            elif frame and line and not line[0].isspace():
                where = f"line {frame[0].group(1)}"
                return f"{line.strip()} at {where}: {frame[1]}"[:300]
        return ""

    def _unittest(self, line: str, pending: tuple[str, str] | None) -> bool:
        if match := _UNITTEST_VERBOSE.match(line):
            self.start("unittest").note(_unittest_id(match.group(1), match.group(2)), _unittest_status(match.group(3)))
            return True
        if pending is not None and (match := _UNITTEST_RESULT_ONLY.match(line)):
            self.start("unittest").note(_unittest_id(*pending), _unittest_status(match.group(1)))
            return True
        if match := _UNITTEST_HEADER.match(line):
            status = TestStatus.FAILED if match.group(1) == "FAIL" else TestStatus.ERROR
            self.start("unittest").note(_unittest_id(match.group(2), match.group(3)), status)
            return True
        if match := _UNITTEST_RAN.match(line):
            run = self.start("unittest")
            run.summary = line
            run.has_counts = True
            run.passed = int(match.group(1))
            return True
        if self.run is not None and self.run.runner == "unittest" and self.run.has_counts:
            if match := _UNITTEST_OK.match(line):
                found = _key_counts(match.group(1) or "")
                self.counts(
                    "unittest",
                    f"{self.run.summary}; {line}",
                    passed=self.run.passed - found.get("skipped", 0),
                    failed=0,
                    skipped=found.get("skipped", 0),
                )
                return True
            if match := _UNITTEST_FAILED.match(line):
                found = _key_counts(match.group(1))
                bad = found.get("failures", 0) + found.get("errors", 0)
                self.counts(
                    "unittest",
                    f"{self.run.summary}; {line}",
                    passed=max(0, self.run.passed - bad - found.get("skipped", 0)),
                    failed=found.get("failures", 0),
                    errors=found.get("errors", 0),
                    skipped=found.get("skipped", 0),
                )
                return True
        if match := _SYMPY_LINE.match(line):
            code = match.group(2)
            status = {"ok": TestStatus.PASSED, "F": TestStatus.FAILED, "E": TestStatus.ERROR}.get(
                code, TestStatus.SKIPPED
            )
            self.start("sympy").note(match.group(1), status)
            return True
        if match := _SYMPY_SUMMARY.match(line):
            found = {
                word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|exceptions?|skipped)", match.group(1))
            }
            self.counts(
                "sympy",
                line,
                passed=found.get("passed", 0),
                failed=found.get("failed", 0),
                errors=found.get("exceptions", found.get("exception", 0)),
                skipped=found.get("skipped", 0),
            )
            return True
        return False

    def _javascript(self, line: str, stripped: str) -> bool:
        if match := _JS_FILE.match(line):
            self.js_evidence = True
            status = TestStatus.PASSED if match.group(1) == "PASS" else TestStatus.FAILED
            run = self.start("jest")
            if status is TestStatus.FAILED or match.group(2) not in run.outcomes:
                run.note(match.group(2), status)
            return True
        if match := _JEST_BULLET.match(line):
            self.js_evidence = True
            self.start("jest").note(match.group(1).replace(" › ", " > "), TestStatus.FAILED)
            return True
        if match := _JEST_TESTS.match(line):
            self.js_evidence = True
            found = _word_counts(match.group(1))
            self.counts(
                "jest",
                stripped,
                passed=found.get("passed", 0),
                failed=found.get("failed", 0),
                skipped=found.get("skipped", 0) + found.get("todo", 0),
            )
            return True
        if match := _VITEST_TESTS.match(line):
            self.js_evidence = True
            found = _word_counts(match.group(1))
            self.counts(
                "vitest",
                stripped,
                passed=found.get("passed", 0),
                failed=found.get("failed", 0),
                skipped=found.get("skipped", 0) + found.get("todo", 0),
            )
            return True
        if match := _JS_FAIL.match(line):
            self.start("jest").note(match.group(1), TestStatus.FAILED)
            return True
        if match := _JS_PASS.match(line):
            self.start("jest").note(match.group(1), TestStatus.PASSED)
            return True
        if match := _JS_SKIP.match(line):
            self.start("jest").note(match.group(1), TestStatus.SKIPPED)
            return True
        if match := _MOCHA_PASSING.match(line):
            self.js_evidence = True
            run = self.start("mocha")
            run.runner = "mocha"
            run.has_counts, run.passed, run.summary = True, int(match.group(1)), stripped
            return True
        if (match := _MOCHA_FAILING.match(line)) and self.run is not None:
            self.run.failed = int(match.group(1))
            self.run.summary = f"{self.run.summary}, {stripped}".strip(", ")
            return True
        if (match := _MOCHA_PENDING.match(line)) and self.run is not None:
            self.run.skipped = int(match.group(1))
            return True
        if self.run is not None and self.run.runner == "mocha" and (match := _MOCHA_NUMBERED.match(line)):
            self.run.note(match.group(2), TestStatus.FAILED)
            return True
        return False

    def _go_cargo(self, line: str) -> bool:
        if match := _GO_RESULT.match(line):
            status = {"PASS": TestStatus.PASSED, "FAIL": TestStatus.FAILED}.get(match.group(1), TestStatus.SKIPPED)
            self.start("go").note(match.group(2), status)
            return True
        if (match := _GO_PKG.match(line)) and ("." in match.group(2) or "/" in match.group(2)):
            run = self.start("go")
            run.has_counts = True
            if match.group(1) == "ok":
                run.passed += 1
            else:
                run.failed += 1
                run.note(match.group(2), TestStatus.FAILED, "package failed")
            run.summary = f"go packages: {run.passed} ok, {run.failed} failed"
            return True
        if match := _CARGO_LINE.match(line):
            status = {"ok": TestStatus.PASSED, "FAILED": TestStatus.FAILED}.get(match.group(2), TestStatus.SKIPPED)
            self.start("cargo").note(match.group(1), status)
            return True
        if match := _CARGO_RESULT.match(line):
            run = self.start("cargo")
            # cargo prints one result line per test binary: add them up.
            run.has_counts = True
            run.passed += int(match.group(2))
            run.failed += int(match.group(3))
            run.skipped += int(match.group(4))
            run.summary = f"cargo: {run.passed} passed, {run.failed} failed, {run.skipped} ignored"
            return True
        return False

    def _jvm(self, line: str) -> bool:
        if match := _SUREFIRE_OLD.match(line):
            status = TestStatus.FAILED if match.group(3) == "FAILURE" else TestStatus.ERROR
            self.start("junit").note(f"{match.group(2)}.{match.group(1)}", status)
            return True
        if match := _SUREFIRE_NEW.match(line):
            status = TestStatus.FAILED if match.group(2) == "FAILURE" else TestStatus.ERROR
            self.start("junit").note(match.group(1), status)
            return True
        if match := _SUREFIRE_TOTAL.match(line):
            total, failures, errors, skipped = (int(match.group(i)) for i in range(1, 5))
            if " in " in match.group(5):
                return True  # a per-class line; the unlabelled one after "Results:" is the total
            self.counts(
                "junit",
                line.replace("[ERROR]", "").replace("[INFO]", "").strip(),
                passed=total - failures - errors - skipped,
                failed=failures,
                errors=errors,
                skipped=skipped,
            )
            return True
        if re.match(r"^\[(?:ERROR|WARNING)\] (Failures|Errors|Flakes):\s*$", line):
            self.section = "JUNIT " + line.split("]", 1)[1].strip().rstrip(":").upper()
            return True
        if self.section.startswith("JUNIT ") and (
            match := re.match(r"^\[(?:ERROR|WARNING)\] ([\w.$]+\.\w+)\s*$", line)
        ):
            status = {"JUNIT FAILURES": TestStatus.FAILED, "JUNIT ERRORS": TestStatus.ERROR}.get(
                self.section,
                TestStatus.PASSED,  # a flake failed, then passed on a rerun
            )
            self.start("junit").note(match.group(1), status)
            return True
        if (
            (self.section.startswith("JUNIT ") or (self.run is not None and self.run.runner == "junit"))
            and (match := _SUREFIRE_LIST.match(line))
            and not line.startswith("[ERROR]   Run")
        ):
            status = TestStatus.ERROR if self.section == "JUNIT ERRORS" else TestStatus.FAILED
            self.start("junit").note(match.group(1), status, match.group(3))
            return True
        if match := _GRADLE_LINE.match(line):
            status = {"PASSED": TestStatus.PASSED, "FAILED": TestStatus.FAILED}.get(match.group(3), TestStatus.SKIPPED)
            self.start("gradle").note(f"{match.group(1)}.{match.group(2)}", status)
            return True
        if match := _GRADLE_SUMMARY.match(line):
            total, failed, skipped = int(match.group(1)), int(match.group(2) or 0), int(match.group(3) or 0)
            self.counts("gradle", line, passed=total - failed - skipped, failed=failed, skipped=skipped)
            return True
        return False

    def _others(self, line: str) -> bool:
        if match := _RSPEC_FAILED.match(line):
            self.start("rspec").note(f"{match.group(2)} ({match.group(1)})", TestStatus.FAILED)
            return True
        if match := _RSPEC_SUMMARY.match(line):
            total, failures, pending = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
            self.counts("rspec", line, passed=total - failures - pending, failed=failures, skipped=pending)
            return True
        if match := _PHPUNIT_OK.match(line):
            self.counts("phpunit", line, passed=int(match.group(1)), failed=0)
            return True
        if match := _PHPUNIT_BAD.match(line):
            found = _key_counts(match.group(2).replace(":", "="))
            bad = found.get("failures", 0) + found.get("errors", 0)
            self.counts(
                "phpunit",
                line,
                passed=int(match.group(1)) - bad,
                failed=found.get("failures", 0),
                errors=found.get("errors", 0),
                skipped=found.get("skipped", 0),
            )
            return True
        if self.run is not None and self.run.runner == "phpunit" and (match := _PHPUNIT_NUMBERED.match(line)):
            self.run.note(match.group(1), TestStatus.FAILED)
            return True
        if match := _DOTNET_SUMMARY.match(line.strip()):
            self.counts(
                "dotnet", line, passed=int(match.group(3)), failed=int(match.group(2)), skipped=int(match.group(4))
            )
            return True
        if match := _DOTNET_LINE.match(line):
            word = match.group(1)
            if word in ("X", "✓", "√") and (self.run is None or self.run.runner != "dotnet"):
                return False  # bare ticks belong to dotnet only once a dotnet run has started
            status = {"Passed": TestStatus.PASSED, "Failed": TestStatus.FAILED, "X": TestStatus.FAILED}.get(
                word, TestStatus.PASSED if word in ("✓", "√") else TestStatus.SKIPPED
            )
            self.start("dotnet").note(match.group(2), status)
            return True
        if line.strip().startswith("Starting test execution"):
            self.start("dotnet")
            return True
        if (match := _DOTNET_TOTAL.match(line)) and self.run is not None and self.run.runner == "dotnet":
            run = self.run
            run.has_counts = True
            key, value = match.group(1), int(match.group(2))
            if key == "Passed":
                run.passed = value
            elif key == "Failed":
                run.failed = value
            elif key == "Skipped":
                run.skipped = value
            run.summary = f"dotnet: {run.passed} passed, {run.failed} failed"
            return True
        if match := _XUNIT_FAIL.match(line):
            self.start("xunit").note(match.group(1), TestStatus.FAILED)
            return True
        if match := _XUNIT_TOTAL.search(line):
            total, errors, failed, skipped = (int(match.group(i)) for i in range(1, 5))
            self.counts(
                "xunit", line, passed=total - errors - failed - skipped, failed=failed, errors=errors, skipped=skipped
            )
            return True
        if match := _RSPEC_DOC.match(line):
            status = TestStatus.FAILED if match.group(2).startswith("FAILED") else TestStatus.SKIPPED
            self.start("rspec").note(match.group(1), status)
            return True
        if match := _TAP_LINE.match(line):
            status = TestStatus.PASSED if match.group(1) == "ok" else TestStatus.FAILED
            if match.group(3):
                status = TestStatus.SKIPPED
            self.start("tap").note(match.group(2), status)
            return True
        if self.run is not None and self.run.runner == "tap" and (match := _TAP_COUNT.match(line)):
            self.run.has_counts = True
            if match.group(1) == "pass":
                self.run.passed = int(match.group(2))
            elif match.group(1) == "fail":
                self.run.failed = int(match.group(2))
            self.run.summary = "TAP: " + ", ".join(
                f"{k} {v}" for k, v in (("pass", self.run.passed), ("fail", self.run.failed))
            )
            return True
        return False


def _merge_short_ids(run: TestRun) -> None:
    """pytest names a failure `test_x` in its section header and `path::test_x` in the summary: one test."""
    full = [t for t in run.outcomes if "::" in t]
    for short in [t for t in run.outcomes if "::" not in t and " " not in t]:
        suffix = "::" + short.replace(".", "::")
        match = next((t for t in full if t.endswith(suffix)), None)
        if match is not None:
            kept = run.outcomes[match]
            dropped = run.outcomes.pop(short)
            if not kept.detail and dropped.detail:
                run.outcomes[match] = TestOutcome(kept.test, kept.status, dropped.detail)


def _pytest_status(word: str) -> TestStatus:
    return {
        "PASSED": TestStatus.PASSED,
        "XPASS": TestStatus.PASSED,
        "FAILED": TestStatus.FAILED,
        "ERROR": TestStatus.ERROR,
    }.get(word, TestStatus.SKIPPED)


def _unittest_status(word: str) -> TestStatus:
    if word in ("ok", "unexpected success"):
        return TestStatus.PASSED
    if word == "FAIL":
        return TestStatus.FAILED
    if word == "ERROR":
        return TestStatus.ERROR
    return TestStatus.SKIPPED


def _unittest_id(name: str, where: str) -> str:
    # Python 3.11+ prints "test_x (module.Class.test_x)"; older ones "test_x (module.Class)".
    return where if where.endswith("." + name) else f"{where}.{name}"


def _key_counts(text: str) -> dict[str, int]:
    return {key.strip().lower(): int(value) for key, value in re.findall(r"(\w[\w ]*?)\s*=\s*(\d+)", text)}


def _word_counts(text: str) -> dict[str, int]:
    return {word.lower(): int(n) for n, word in re.findall(r"(\d+) (\w+)", text)}
