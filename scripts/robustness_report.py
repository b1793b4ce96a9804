"""Run the robustness tests and print the outcome tables they observed (markdown).

    python scripts/robustness_report.py [--out report.md] [extra pytest args]

The tests (tests/integration/test_bad_inputs.py, test_faults.py, test_security.py, tests/unit/test_limits.py)
append what they saw to $AEI_ROBUSTNESS_REPORT: one row per bad input (status, error code, message), one
per fault (exit code, rows in the table). This script sets it, runs pytest, prints the tables and the
pytest summary line, and exits with pytest's exit code.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TESTS = [
    "tests/unit/test_limits.py",
    "tests/integration/test_bad_inputs.py",
    "tests/integration/test_faults.py",
    "tests/integration/test_security.py",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="also write the report here")
    args, extra = ap.parse_known_args()
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.md"
        env = {**os.environ, "AEI_ROBUSTNESS_REPORT": str(report)}
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", *TESTS, *extra],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
        )
        text = report.read_text() if report.exists() else "(no tables: did the tests run?)\n"
    summary = [ln for ln in proc.stdout.splitlines() if " passed" in ln or " failed" in ln or " error" in ln]
    text += "\n" + (summary[-1] if summary else proc.stdout[-2000:]) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    if proc.returncode:
        print(proc.stdout[-5000:], file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
