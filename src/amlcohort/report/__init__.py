"""amlcohort.report."""
