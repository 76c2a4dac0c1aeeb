"""Synthetic cohorts: test, demo and benchmark data, not the domain.

- ``cohorts.generator``: the seeded generator (any size, any product mix);
- ``mixes.yaml``: its named product mixes (template id -> weight);
- ``cohorts.fixtures``: the fixture cohorts, rebuilt byte for byte from the generator;
- ``data/*.json``: the cohort files (``small.json`` written by hand, the others generated):
  the demo's regional cohort, and the tests' and the benchmarks' cohorts.

The command line is ``python -m cohorts``. This package depends on ``pathway`` only;
``pathway`` and ``solver`` never import it, ``api`` only for the demo's default cohort.
"""

from importlib import resources
from pathlib import Path

# An installed package is a directory, so this is a pathlib.Path.
COHORT_FILES: Path = resources.files(__name__) / "data"
DEMO_COHORT = COHORT_FILES / "regional.json"
