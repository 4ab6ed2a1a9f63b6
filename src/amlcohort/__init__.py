"""amlcohort: an AML salvage-therapy cohort study, end to end.

Research software, not a medical device.
"""

__version__ = "0.1.0"
