from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimkit.core.errors import RecipeError, SlimkitError
from slimkit.pipeline.recipe import load_recipe

EXAMPLES = sorted((Path(__file__).parents[2] / "examples" / "recipes").glob("*.yaml"))
VALID = {
    "version": 1, "task": "digits", "seed": 0,
    "baseline": {"model": "mlp", "model_args": {"width": 16}, "train": {"epochs": 2}},
    "steps": [{"technique": "train", "name": "a", "from": "baseline", "params": {"epochs": 1}},
              {"technique": "export", "from": "a"}],
    "constraints": {"max_accuracy_drop": 0.01},
}


def test_examples_exist_and_load() -> None:
    assert EXAMPLES
    for path in EXAMPLES:
        recipe = load_recipe(path)
        assert recipe.version == 1 and recipe.steps


def test_set_overrides_any_field_with_type_checking() -> None:
    recipe = load_recipe(VALID, ["steps.0.params.lr=0.01", "seed=3",
                                 "baseline.model_args.width=8"])
    assert recipe.steps[0].params["lr"] == 0.01 and recipe.seed == 3
    assert recipe.baseline.model_args["width"] == 8
    with pytest.raises(RecipeError,
                       match=r"steps\[0\]\.params\.lr: input should be a valid number"):
        load_recipe(VALID, ["steps.0.params.lr=fast"])
    with pytest.raises(RecipeError, match=r"steps\.7 is not an index of a list of 2"):
        load_recipe(VALID, ["steps.7.params.lr=1"])


def test_digest_changes_with_content_and_seed() -> None:
    a = load_recipe(VALID)
    assert load_recipe(VALID).digest() == a.digest()
    assert load_recipe(VALID, ["seed=1"]).digest() != a.digest()
    assert load_recipe(VALID, ["steps.0.params.epochs=2"]).digest() != a.digest()


def _with(path: str, value: object, base: dict | None = None) -> dict:
    data = yaml.safe_load(yaml.safe_dump(VALID if base is None else base))
    node = data
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


@pytest.mark.parametrize(("path", "value", "message"), [
    ("colour", "red", r"^colour: unknown parameter; allowed: baseline, constraints"),
    ("seed", "zero", r"^seed: input should be a valid integer"),
    ("version", 2, r"^version: input should be 1, got 2"),
    ("task", "imagenet", r"^task: unknown task 'imagenet'; choose one of: diabetes, digits, "
                             r"forecast, minilm-embed, minilm-embed-small, mnist1d, custom"),
    ("steps.1.technique", "magic", r"^steps\[1\]\.technique: unknown technique 'magic'"),
    ("steps.0.params.epochs", -1, r"^steps\[0\]\.params\.epochs: input should be greater than"),
    ("steps.0.params.ratio", 1.5, r"^steps\[0\]\.params\.ratio: unknown parameter; allowed:"),
    ("steps.0.unknown", 1, r"^steps\[0\]\.unknown: unknown parameter"),
    ("steps.1.from", "nowhere", r"^steps\[1\]\.from: no step named 'nowhere'; use one of: "
                                r"baseline, previous, a"),
    ("steps.0.from", "a", r"^steps\[0\]\.from: 'a' is this step or a later one, which would "
                          r"form a cycle"),
    ("steps.0.name", "baseline", r"^steps\[0\]\.name: 'baseline' is reserved"),
    ("steps.1.name", "a", r"^steps\[1\]\.name: 'a' is used by an earlier step"),
    ("baseline.model", "resnet", r"^baseline\.model: unknown model 'resnet'"),
    ("baseline.model_args.width", -4, r"^baseline\.model_args\.width: input should be greater"),
    ("baseline.train.optimizer", "lion", r"^baseline\.train\.optimizer: input should be 'adam'"),
    ("constraints.max_accuracy_drop", 1.5, r"^constraints\.max_accuracy_drop: input should be "
                                           r"less than 1"),
    ("steps", "none", r"^steps: input should be a valid list"),
])
def test_bad_recipes_name_the_offending_field(path: str, value: object, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        load_recipe(_with(path, value))


def test_yaml_that_does_not_parse(tmp_path: Path) -> None:
    bad = tmp_path / "r.yaml"
    bad.write_text("version: 1\ntask: [mnist1d\n")
    with pytest.raises(RecipeError, match=r"r\.yaml: invalid YAML at line 3, column 1"):
        load_recipe(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(RecipeError, match="a recipe is a YAML mapping"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="no such recipe file"):
        load_recipe(tmp_path / "missing.yaml")


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                     st.text(max_size=8))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8)
_paths = st.sampled_from(["version", "task", "seed", "threads", "baseline", "baseline.model",
                          "baseline.model_args", "baseline.model_args.width", "baseline.train",
                          "baseline.train.lr", "steps", "steps.0", "steps.0.technique",
                          "steps.0.from", "steps.0.params", "steps.0.params.epochs",
                          "steps.1.from", "steps.1.name", "constraints",
                          "constraints.max_latency_ms", "profile", "profile.min_runs", "extra"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_paths, _values), min_size=1, max_size=3))
def test_malformed_recipes_only_raise_clear_errors(mutations: list) -> None:
    data = yaml.safe_load(yaml.safe_dump(VALID))
    for path, value in mutations:
        try:
            data = _with(path, value, data)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError,
                yaml.YAMLError):
            continue  # the path no longer exists after an earlier mutation
    try:
        load_recipe(data)
    except SlimkitError as err:
        message = str(err)
        assert message and "\n" not in message and "Traceback" not in message


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_files_only_raise_clear_errors(text: str) -> None:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(text)
    try:
        load_recipe(handle.name)
    except SlimkitError as err:
        assert "\n" not in str(err)
    finally:
        Path(handle.name).unlink()
