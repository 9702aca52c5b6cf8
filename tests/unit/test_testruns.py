"""Test-runner output as agents paste it: real samples (tests/unit/data/runners, see INDEX.md for
where each comes from) and the traps around them."""

from __future__ import annotations

from pathlib import Path

import pytest

from handoff.domain.testruns import TestStatus, parse_test_output

RUNNERS = Path(__file__).parent / "data" / "runners"


def bad(name: str) -> set[str]:
    run = parse_test_output((RUNNERS / name).read_text())
    assert run is not None, name
    return {o.test for o in run.outcomes.values() if o.status in (TestStatus.FAILED, TestStatus.ERROR)}


@pytest.mark.parametrize(
    ("sample", "failing"),
    [
        ("pytest-1.txt", {"test_example.py::test_fail", "test_example.py::test_error"}),
        ("pytest-3.txt", {"test_class.py::TestClass::test_two"}),
        ("pytest-6.txt", {"astropy/units/tests/test_quantity_duck_typing.py::test_duck_array_radd"}),
        ("pytest-7.txt", {"pylint/utils/utils.py"}),
        (
            "django-2.txt",
            {"aggregation.tests.AggregateAnnotationPruningTests.test_referenced_window_requires_wrapping"},
        ),
        ("unittest-3.txt", {f"__main__.TestClass.test_case_{n}" for n in (1, 4, 7)}),
        ("cargo-1.txt", {"tests::this_test_will_fail"}),
        ("cargo-4.txt", {"tests::greater_than_100"}),
        ("go-test-1.txt", {"TestOne", "package/fail"}),
        ("gradle-4.txt", {"GreeterTest.testThatGreeterReturnsTheCorrectGreeting"}),
        ("maven-2.txt", {"CpdViolationCheckMojoTest.testException"}),
        ("maven-3.txt", {"example.ExampleTests.failsAssertionAlways", "example.ExampleTests.throwsAlways"}),
        ("maven-4.txt", {"org.junit.tests.description.TestDescriptionTest.failingTest"}),
        ("mocha-1.txt", {"AuthController isAuthorized Should return false if not authorized"}),
        ("dotnet-1.txt", {"This_test_should_fail"}),
        ("dotnet-2.txt", {"SampleUnitTestProject.UnitTest1.FailingTest"}),
        ("rspec-3.txt", {"does something that fails"}),
    ],
)
def test_real_outputs_name_exactly_the_failing_tests(sample: str, failing: set[str]) -> None:
    assert bad(sample) == failing


def test_django_run_with_docstring_lines_and_migration_ok_lines() -> None:
    run = parse_test_output((RUNNERS / "django-1.txt").read_text())
    assert run is not None and run.runner == "unittest"
    assert (run.failed, run.errors) == (1, 1)
    assert "migrations.test_executor.ExecutorTests.test_migrate_skips_schema_creation" in bad("django-1.txt")
    assert not any("Applying" in t for t in run.outcomes)


def test_a_test_named_like_a_failure_that_passed_is_a_pass() -> None:
    run = parse_test_output((RUNNERS / "django-3.txt").read_text())
    assert run is not None and run.green
    assert not bad("django-3.txt")


def test_quiet_runs_give_counts_without_names() -> None:
    run = parse_test_output((RUNNERS / "django-4.txt").read_text())
    assert run is not None and (run.passed, run.errors) == (19, 7)
    assert len(bad("django-4.txt")) == 7
    quiet = parse_test_output("..F.\n1 failed, 3 passed in 0.12s")
    assert quiet is not None and (quiet.passed, quiet.failed, quiet.green) == (3, 1, False)


@pytest.mark.parametrize(
    "sample", ["cargo-2.txt", "cargo-3.txt", "django-3.txt", "pytest-8.txt", "phpunit-3.txt", "rspec-4.txt"]
)
def test_green_runs_are_green(sample: str) -> None:
    run = parse_test_output((RUNNERS / sample).read_text())
    assert run is not None and run.green, sample


def test_sympy_failures_carry_the_failing_assertion() -> None:
    output = (
        "____________________ sympy/core/tests/test_arit.py:test_Mod ____________________\n"
        "Traceback (most recent call last):\n"
        '  File "/testbed/sympy/core/tests/test_arit.py", line 1662, in test_Mod\n'
        "    assert Mod(Mod(x + 2, 4)*(x + 4), 4) == Mod(x*(x + 2), 4)\n"
        "AssertionError\n\n"
        "=== tests finished: 81 passed, 1 failed, 3 expected to fail, in 2.65 seconds ===\n"
    )
    run = parse_test_output(output)
    assert run is not None and (run.passed, run.failed) == (81, 1)
    (outcome,) = run.outcomes.values()
    assert outcome.test == "sympy/core/tests/test_arit.py:test_Mod"
    assert "1662" in outcome.detail and "assert Mod(Mod(x + 2, 4)" in outcome.detail


@pytest.mark.parametrize(
    "text",
    [
        "I ran the tests and 0 failed. The function test_error handles errors.",
        "✓ Compiled successfully\n✓ Ready in 1.2s",  # a build tool's ticks, not jest
        "Applying admin.0001_initial... OK",
        "FAIL is just a word in this sentence",
        "",
    ],
)
def test_things_that_look_like_test_output_but_are_not(text: str) -> None:
    assert parse_test_output(text) is None


def test_ansi_colour_codes_are_stripped_before_matching() -> None:
    run = parse_test_output("\x1b[31mFAILED\x1b[0m tests/test_a.py::\x1b[1mtest_x\x1b[0m - AssertionError")
    assert run is not None and bad_of(run) == {"tests/test_a.py::test_x"}


def test_the_latest_status_of_a_test_in_one_output_wins() -> None:
    run = parse_test_output("--- FAIL: TestX (0.00s)\n--- PASS: TestX (0.00s)\nok  \tgithub.com/a/b\t0.1s")
    assert run is not None and run.outcomes["TestX"].status is TestStatus.PASSED


def test_huge_output_is_scanned_head_and_tail() -> None:
    noise = "x" * 1_000_000
    run = parse_test_output("tests/t.py::test_a FAILED\n" + noise + "\n1 failed in 3.0s")
    assert run is not None and run.failed == 1


def bad_of(run: object) -> set[str]:
    return {o.test for o in run.outcomes.values() if o.status in (TestStatus.FAILED, TestStatus.ERROR)}  # type: ignore[attr-defined]
