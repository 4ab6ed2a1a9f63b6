"""A proportion (e.g. complete-remission rate) with an exact or Wilson confidence interval."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from amlcohort.stats._distributions import clopper_pearson, wilson
from amlcohort.stats._validation import check_conf_level

__all__ = ["ProportionMethod", "ProportionResult", "proportion_ci"]

ProportionMethod = Literal["clopper-pearson", "wilson"]
_METHODS = ("clopper-pearson", "wilson")
_R_CALL = {
    "clopper-pearson": "binom.test({x}, {n}, conf.level={level:g})$conf.int",
    "wilson": "prop.test({x}, {n}, conf.level={level:g}, correct=FALSE)$conf.int",
}


@dataclass(frozen=True)
class ProportionResult:
    """``x`` successes out of ``n``: ``estimate`` = x / n and its two-sided interval.

    ``method`` is ``"clopper-pearson"`` (exact; R's ``binom.test``) or ``"wilson"`` (score interval
    without continuity correction; R's ``prop.test(x, n, correct=FALSE)``).
    """

    x: int
    n: int
    estimate: float
    lower: float
    upper: float
    method: str
    conf_level: float

    @property
    def r_call(self) -> str:
        """The R call that gives the same interval."""
        return _R_CALL[self.method].format(x=self.x, n=self.n, level=self.conf_level)

    def summary(self) -> str:
        pct = f"{100 * self.conf_level:g}%"
        return (
            f"{self.x}/{self.n} = {100 * self.estimate:.1f}% "
            f"({pct} CI {100 * self.lower:.1f}% to {100 * self.upper:.1f}%, {self.method})"
        )

    def __repr__(self) -> str:
        return self.summary()


def proportion_ci(
    x: int,
    n: int,
    *,
    method: ProportionMethod = "clopper-pearson",
    conf_level: float = 0.95,
) -> ProportionResult:
    """Proportion ``x / n`` with a Clopper–Pearson (exact) or Wilson interval.

    Examples
    --------
    >>> r = proportion_ci(4, 5)
    >>> round(r.lower, 6), round(r.upper, 6)
    (0.283582, 0.994949)
    >>> r.r_call
    'binom.test(4, 5, conf.level=0.95)$conf.int'
    >>> w = proportion_ci(4, 5, method="wilson")
    >>> round(w.lower, 6), round(w.upper, 6)
    (0.375535, 0.963776)
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    level = check_conf_level(conf_level)
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive whole number, got {n!r}")
    if int(x) != x or not 0 <= x <= n:
        raise ValueError(f"x must be a whole number between 0 and n={n}, got {x!r}")
    k, size = int(x), int(n)
    lower, upper = (clopper_pearson if method == "clopper-pearson" else wilson)(k, size, level)
    return ProportionResult(
        x=k,
        n=size,
        estimate=k / size,
        lower=lower,
        upper=upper,
        method=method,
        conf_level=level,
    )
