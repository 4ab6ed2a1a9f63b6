"""amlcohort.criteria."""
