"""amlcohort.stats: survival and contingency-table statistics that match R's ``survival`` and ``stats``.

Every estimate is checked against R (see ``tests/fixtures/r/make_reference.R``):

* proportions: :func:`proportion_ci` (Clopper–Pearson = ``binom.test``;
  Wilson = ``prop.test(correct=FALSE)``);
* tables: :func:`fisher_exact` (2×2 and r×c, ``fisher.test``), :func:`chi_square_test` (``chisq.test``);
* survival: :func:`event_counts` (Ibis aggregation, or a Parquet file / Arrow table read by NumPy),
  :func:`kaplan_meier` (``survfit``; pointwise intervals ``conf_type="log"`` by default, as R),
  :func:`logrank_test` (``survdiff``), :func:`median_follow_up` (reverse Kaplan–Meier),
  :func:`restricted_mean` (``print(survfit(...), rmean=tau)``), :func:`cox_ph` (``coxph(ties="efron")``).
"""

from amlcohort.stats.contingency import ChiSquareResult, FisherResult, chi_square_test, fisher_exact
from amlcohort.stats.counts import counts_from_arrays, event_counts, validate_counts
from amlcohort.stats.cox import ChiSquareTest, CoxPHResult, cox_ph
from amlcohort.stats.kaplan_meier import (
    FollowUpResult,
    KaplanMeierResult,
    RestrictedMeanResult,
    SurvivalQuantile,
    kaplan_meier,
    kaplan_meier_by_group,
    kaplan_meier_by_group_from_counts,
    kaplan_meier_from_counts,
    median_follow_up,
    median_follow_up_from_counts,
    restricted_mean,
)
from amlcohort.stats.logrank import LogRankResult, logrank_test, logrank_test_from_counts
from amlcohort.stats.proportions import ProportionResult, proportion_ci

__all__ = [
    "ChiSquareResult",
    "ChiSquareTest",
    "CoxPHResult",
    "FisherResult",
    "FollowUpResult",
    "KaplanMeierResult",
    "LogRankResult",
    "ProportionResult",
    "RestrictedMeanResult",
    "SurvivalQuantile",
    "chi_square_test",
    "counts_from_arrays",
    "cox_ph",
    "event_counts",
    "fisher_exact",
    "kaplan_meier",
    "kaplan_meier_by_group",
    "kaplan_meier_by_group_from_counts",
    "kaplan_meier_from_counts",
    "logrank_test",
    "logrank_test_from_counts",
    "median_follow_up",
    "median_follow_up_from_counts",
    "proportion_ci",
    "restricted_mean",
    "validate_counts",
]
