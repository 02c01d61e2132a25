"""The multi-objective search over technique chains behind ``slimkit optimize``.

Each Optuna trial samples a chain — one registered technique per role, in the order of
``techniques.ROLES`` (what compresses the float model, then what lowers its precision), each link's
parameters drawn by the technique's own ``search_space`` — applies it to the baseline and
measures the result with the same code as every candidate (quicker timing settings). The values
are (val metric, objective); the accuracy budget is an Optuna constraint, so the sampler steers
towards feasible chains and ``study.best_trials`` holds only feasible ones.

Everything a trial needs is in the study's user attributes and the artifact store, so
``slimkit worker`` on another machine runs trials of the same search.
"""
