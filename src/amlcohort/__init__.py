"""amlcohort: an AML salvage-therapy cohort study, end to end.

Research software, not a medical device.

>>> from amlcohort import load_cohort
>>> cohort = load_cohort()          # the embedded (reconstructed) study cohort
>>> cohort.table("patients").count().execute()
13
"""

from amlcohort.io.cohort import Cohort, ValidationReport, load_cohort, validate_bundle
from amlcohort.problems import InputError, Problem

__version__ = "0.1.0"
__all__ = ["Cohort", "InputError", "Problem", "ValidationReport", "load_cohort", "validate_bundle"]
from amlcohort.api import analysis_table, best_response, kaplan_meier, logrank, responses, table1  # noqa: F401
