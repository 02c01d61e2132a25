"""The budget is planned, not refused: tuning trials and trial epochs are cut to fit, from
injected timings (the same on a fast, a slow or a loaded machine)."""

from __future__ import annotations

import pytest

from slimkit.core.errors import SlimkitError
from slimkit.core.runs import Candidate
from slimkit.pipeline.optimize.budget import Costs, check_baseline_fits, plan
from slimkit.pipeline.optimize.config import OptimizeConfig


def config(budget: str, **kwargs: object) -> OptimizeConfig:
    return OptimizeConfig(task="mnist1d", budget=budget, **kwargs)


# a loaded machine's up-front estimate: 60 epochs of 17.5 s, a 20 s measurement
LOADED = Costs(epoch_s=17.5, train_s=60 * 17.5, measure_s=20.0, quick_s=4.0, source="estimate")


def test_a_budget_the_baseline_fits_is_planned_with_what_was_cut() -> None:
    asked = config("20m", tune_trials=4, epochs=30)
    check_baseline_fits(asked, LOADED)  # 17.5 min of baseline fits in 20 min: no refusal
    planned = plan(asked, LOADED, left_s=20 * 60 - LOADED.train_s - LOADED.measure_s,
                   tuning=True)
    assert planned.tune_trials == 0 and planned.trial_epochs == 1 and planned.finalists == 1
    assert planned.cuts == ["1 of 3 finalists measured in full",
                            "no tuning pass (its 4 trials do not fit)",
                            "search trials train 1 of 30 epochs"]
    assert planned.to_dict()["timed_on"] == "estimate"


def test_only_a_budget_the_baseline_alone_cannot_fit_is_refused() -> None:
    with pytest.raises(SlimkitError, match=r"--budget 15m: the baseline alone needs up to "
                                           r"17.8 min .*give --budget 18m or more"):
        check_baseline_fits(config("15m"), LOADED)


def test_real_timings_replan_the_rest() -> None:
    # c0 stopped early: 12 epochs of 1 s instead of 60 of 17.5 s
    c0 = Candidate(id="c0", parent=None, technique="train", params={},
                   timing={"train_s": 12.0, "measure_s": 6.0}, training={"epochs_run": 12})
    real = LOADED.measured(c0)
    assert (real.epoch_s, real.train_s, real.measure_s, real.source) == (1.0, 12.0, 6.0, "c0")
    asked = config("20m", tune_trials=4, epochs=30)
    planned = plan(asked, real, left_s=18 * 60, tuning=True)
    assert planned.tune_trials == 4 and planned.trial_epochs == 30 and planned.cuts == []
    assert planned.finalists == 3
    tight = plan(asked, real, left_s=150, tuning=True)  # 2.5 min left
    assert 0 < tight.tune_trials < 4 and tight.trial_epochs < 30
    assert tight.cuts[0] == f"tuning {tight.tune_trials} of 4 trials"


def test_a_candidate_without_training_keeps_the_epoch_estimate() -> None:
    given = Candidate(id="c0", parent=None, technique="train", params={"epochs": 0},
                      timing={"train_s": 0.0, "measure_s": 93.0}, training={})
    real = LOADED.measured(given)
    assert (real.epoch_s, real.train_s, real.measure_s) == (17.5, 60 * 17.5, 93.0)
    left = 12 * 60 - 95
    planned = plan(config("12m", tune_trials=0, epochs=30), real, left_s=left, tuning=False)
    assert planned.finalists == 1  # a 93 s measurement: one finalist, not three
    assert planned.cuts[0] == "1 of 3 finalists measured in full"


def test_a_trial_cap_gives_each_trial_more_epochs() -> None:
    costs = Costs(epoch_s=65.0, train_s=0.0, measure_s=20.0, quick_s=4.0, source="estimate")
    uncapped = plan(config("35m", tune_trials=0, epochs=6), costs, left_s=33 * 60, tuning=False)
    capped = plan(config("35m", tune_trials=0, epochs=6, trials=4), costs, left_s=33 * 60,
                  tuning=False)
    assert uncapped.trial_epochs == 2  # ten trials must fit
    assert capped.trial_epochs == 6  # four trials of 6 epochs fit
