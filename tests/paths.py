"""Where the repository and the packaged data files are, for every test module."""

from pathlib import Path

from cohorts import COHORT_FILES
from pathway.catalogue import DEFAULT_CATALOGUE

ROOT = Path(__file__).resolve().parent.parent
COHORTS = COHORT_FILES  # cohorts/data: the fixture and demo cohorts
CATALOGUE = DEFAULT_CATALOGUE  # pathway/data/pathways.yaml
