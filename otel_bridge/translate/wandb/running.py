"""Running per-scorer metrics in O(1) per sample: the history's accuracy, mean, std, var, stderr.

Sums, not the list of every score: the translation rebuilt each scorer's whole series on every
sample (O(n²) over an eval). A sample sent again replaces its earlier values (``remove`` then
``add``). Metrics that cannot be kept incrementally (bootstrap_stderr, custom metrics) are not
in the running history; the task's end brings Inspect's own values for all of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass
class Moments:
    """Count, sum and (shifted) sum of squares of one scorer's values."""

    n: int = 0
    total: float = 0.0  # Σv in arrival order: the mean is the same float as sum(values) / n
    shift: float | None = None  # the first value: squares of v - shift keep the variance exact
    d1: float = 0.0
    d2: float = 0.0

    def add(self, value: float, sign: int = 1) -> None:
        if self.shift is None:
            self.shift = value
        d = value - self.shift
        self.n += sign
        self.total += sign * value
        self.d1 += sign * d
        self.d2 += sign * d * d

    def value(self, metric: str) -> float | None:
        """What Inspect's built-in ``metric`` reports over these values (None when undefined)."""
        n = self.n
        if n <= 0:
            return None
        if metric in {"accuracy", "mean"}:
            return self.total / n
        if metric in {"std", "var", "stderr"}:
            if n < 2:
                return 0.0
            var = max(0.0, (self.d2 - self.d1 * self.d1 / n) / (n - 1))
            if metric == "var":
                return var
            std = math.sqrt(var)
            return std if metric == "std" else std / math.sqrt(n)
        return None


class RunningScores:
    """Every scorer's moments over the samples of one task × model seen so far."""

    def __init__(self) -> None:
        self._scorers: dict[str, Moments] = {}

    def add(self, numeric: Mapping[str, float], sign: int = 1) -> None:
        for scorer, value in numeric.items():
            moments = self._scorers.setdefault(scorer, Moments())
            moments.add(value, sign)
            if moments.n <= 0:
                del self._scorers[scorer]

    def remove(self, numeric: Mapping[str, float]) -> None:
        self.add(numeric, -1)

    def row(
        self, label: str, metric_names: Mapping[str, list[str]], categorical: Iterable[str]
    ) -> dict[str, float]:
        """The running history row of each scorer's metrics (Inspect's names when hinted)."""
        categorical = set(categorical)
        row: dict[str, float] = {}
        for scorer in sorted(self._scorers):
            moments = self._scorers[scorer]
            names = metric_names.get(scorer) or (["accuracy"] if scorer in categorical else ["mean"])
            for metric in names:
                value = moments.value(metric)
                if value is not None:
                    row[f"{label}/{scorer}/{metric}"] = value
        return row


@dataclass
class _Recent:
    """What a recent sample contributed, to take it back if the sample is sent again."""

    span: tuple[str, str]
    numeric: dict[str, float]
    errored: bool


class PairSamples:
    """One task × model's sample counts and running scores, with the last ``recent`` samples'
    contributions (a sample re-sent after that many others counts again)."""

    def __init__(self, recent: int) -> None:
        self.limit = recent
        self.running = RunningScores()
        self.recent: dict[tuple[str, int], _Recent] = {}  # oldest first
        self.samples = 0
        self.errors = 0
        self.tokens = 0

    def record(
        self, sample: tuple[str, int], span: tuple[str, str], numeric: dict[str, float], errored: bool
    ) -> bool:
        """Count a sample's final result; False when it is the same span again (nothing changes)."""
        earlier = self.recent.pop(sample, None)
        if earlier is not None and earlier.span == span:
            self.recent[sample] = earlier
            return False
        if earlier is None:
            self.samples += 1
        else:  # the same sample again, in another span: it replaces what it said before
            self.running.remove(earlier.numeric)
            self.errors -= earlier.errored
        self.running.add(numeric)
        self.errors += errored
        self.recent[sample] = _Recent(span, numeric, errored)
        if len(self.recent) > self.limit:
            del self.recent[next(iter(self.recent))]
        return True

    def totals(self) -> tuple[int, int, int]:
        """Samples, errors, tokens."""
        return self.samples, self.errors, self.tokens
