"""When the search stops, as Optuna callbacks: each is called after every trial this process
runs and ends the search with ``study.stop()`` once its condition holds. The deadline is
``study.optimize``'s own ``timeout``.
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna

from slimkit.pipeline.search.chains import fresh_chain
from slimkit.pipeline.search.records import is_new
from slimkit.techniques import SearchSpec

FAIL = optuna.trial.TrialState.FAIL


class StopRule:
    """A condition that ends the search; ``reason`` says why once it has."""

    reason: str | None = None

    def check(self, study: optuna.Study) -> str | None:
        """Why the search should stop now, or None to go on."""
        raise NotImplementedError

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        reason = self.check(study)
        if reason is not None:
            self.reason = reason
            study.stop()


class TrialCap(StopRule):
    """Stop once ``trials`` chains are measured, by any worker (repeats do not count)."""

    def __init__(self, trials: int) -> None:
        self.trials = trials

    def check(self, study: optuna.Study) -> str | None:
        measured = sum(is_new(t) for t in study.get_trials(deepcopy=False))
        return f"trial cap ({self.trials})" if measured >= self.trials else None


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]


def _repeats(trials: Sequence[optuna.trial.FrozenTrial], count: int) -> bool:
    recent = trials[-count:]
    return len(recent) == count and all("duplicate_of" in t.user_attrs for t in recent)


class OnlyRepeats(StopRule):
    """Stop when the last ``repeats`` trials all proposed chains already measured."""

    def __init__(self, repeats: int) -> None:
        self.repeats = repeats

    def check(self, study: optuna.Study) -> str | None:
        if _repeats(_finished(study), self.repeats):
            return "the sampler proposed only chains already measured"
        return None


class MostlyFailing(StopRule):
    """Stop when at least ``minimum`` of this session's trials failed and failures outnumber
    successes ``ratio`` to one (a search in which nearly nothing works)."""

    def __init__(self, first: int, minimum: int = 10, ratio: float = 2.0) -> None:
        self.first, self.minimum, self.ratio = first, minimum, ratio

    def check(self, study: optuna.Study) -> str | None:
        mine = [t for t in _finished(study) if t.number >= self.first]
        failed = [t for t in mine if t.state == FAIL and not t.user_attrs.get("budget_reached")]
        if len(failed) >= self.minimum and len(failed) > self.ratio * (len(mine) - len(failed)):
            last = str(failed[-1].user_attrs.get("error", "?"))[:200]
            return f"{len(failed)} trials failed; last error: {last}"
        return None


class Explore:
    """After ``repeats`` proposals of measured chains in a row, queue a random chain no trial
    has measured yet (exploration instead of repeating)."""

    def __init__(self, repeats: int, techniques: Sequence[str], spec: SearchSpec,
                 seed: int) -> None:
        self.repeats, self.techniques, self.spec, self.seed = repeats, techniques, spec, seed

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        trials = _finished(study)
        if not _repeats(trials, self.repeats):
            return
        params = fresh_chain(study, self.techniques, self.spec, seed=self.seed + len(trials))
        if params is not None:
            study.enqueue_trial(params, skip_if_exists=True)
