"""``slimkit optimize``: baseline, a short tuning pass, a constrained multi-objective search
over technique chains, then the best finalists measured in full and the selection.

The budget is the wall-clock time of the whole command, kept across resumes (run.json records
what was spent). A trial is never interrupted, so the search ends within one trial's length of
its deadline; time for measuring the finalists is reserved up front.
"""
