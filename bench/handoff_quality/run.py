"""Print brief recall against tail truncation for every case and budget.

.venv/bin/python bench/handoff_quality/run.py [--cases DIR] [--verbose] [--show CASE@BUDGET]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from evaluate import (
    BASELINE,
    CASES,
    brief,
    fold,
    load_cases,
    load_scenarios,
    measure,
    plain,
    score_case,
    summarise,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=Path, default=CASES)
    parser.add_argument("--verbose", action="store_true", help="list missed facts per case")
    parser.add_argument("--show", help="print the brief for CASE@BUDGET[@plain]")
    parser.add_argument("--only", help="only cases whose name contains this")
    parser.add_argument("--write-baseline", action="store_true", help="record today's scores as the floor tests hold")
    args = parser.parse_args()
    if args.write_baseline:
        BASELINE.write_text(json.dumps(measure(), indent=2, sort_keys=True) + "\n")
        print(f"wrote {BASELINE}")
        return 0
    cases = [c for c in load_cases(args.cases) if not args.only or args.only in c.name]
    if args.show:
        name, budget, *mode = args.show.split("@")
        case = next(c for c in cases if c.name == name)
        entries = plain(case.entries) if mode == ["plain"] else case.entries
        digest, tail = fold(entries)
        print(brief(digest, tail, int(budget), len(entries)))
        return 0
    scores = []
    for case in cases:
        for mode in ("import", "plain"):
            for s in score_case(case, mode):
                scores.append(s)
                if args.verbose:
                    print(
                        f"{case.name:34} {mode:6} {s.budget:5}  "
                        f"brief {s.brief:.2f}  tail {s.tail:.2f}  missed {s.missed}"
                    )
    print(f"\n{len(cases)} real cases, {sum(len(c.facts) for c in cases)} facts")
    print(f"{'mode@budget':16} {'brief':>6} {'tail':>6} {'gain':>6}")
    for key, row in summarise(scores).items():
        print(f"{key:16} {row['brief']:6.2f} {row['tail']:6.2f} {row['brief'] - row['tail']:+6.2f}")
    scenarios = load_scenarios()
    if scenarios:
        sc = [s for case in scenarios for s in score_case(case, "import")]
        if args.verbose:
            for s in sc:
                print(f"{s.case:34} scenario {s.budget:5}  brief {s.brief:.2f}  tail {s.tail:.2f}  missed {s.missed}")
        print(f"\n{len(scenarios)} hand-written scenarios")
        for key, row in summarise(sc).items():
            print(f"{key:16} {row['brief']:6.2f} {row['tail']:6.2f} {row['brief'] - row['tail']:+6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
