"""Where the fixture files are, for every test module."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
COHORTS = FIXTURES / "cohorts"
