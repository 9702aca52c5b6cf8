from __future__ import annotations

from pathlib import Path

SAMPLE = Path(__file__).parent / "fixtures" / "sample"
