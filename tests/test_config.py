"""params.yaml validation: one readable message naming the key, the bad value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mechatlas.config import json_schema, load_params, params_hash, validate_params
from mechatlas.errors import ConfigError

from conftest import REPO, deep_update, repo_params


def test_the_repository_params_file_is_valid() -> None:
    params = load_params(REPO / "params.yaml")
    assert "organism" in params.models


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            {"run": {"device": "tpu"}},
            "`run.device` is 'tpu'; allowed values are 'cpu', 'cuda', 'mps' or 'auto'",
        ),
        ({"organism": {"training": {"epochs": 0}}}, "`organism.training.epochs` is 0; it must be >= 1"),
        (
            {"organism": {"data": {"test_fraction": 0.9}}},
            "`organism.data.test_fraction` is 0.9; it must be < 0.5",
        ),
        ({"organism": {"trainin": {}}}, "unknown key `organism.trainin`; remove it or check its spelling"),
        ({"run": {"batch_size": "many"}}, "`run.batch_size` is 'many'"),
        ({"models": {"my model": {"source": "x"}}}, "model name 'my model' must be letters"),
        (
            {"dimensionality": {"judge": "substring", "panel_judges": ["first_token"]}},
            "leaves out judge `substring`, the one the verdicts are derived under; add it",
        ),
        (
            {"dimensionality": {"panel_judges": ["first_token", "first_token"]}},
            "panel_judges names a judge twice",
        ),
        (
            {"dimensionality": {"panel_judges": ["first_token", "classifier"]}},
            "dimensionality.panel_judges names `classifier` but refusal_direction.judge names no classifier",
        ),
    ],
)
def test_an_invalid_value_names_the_key_the_value_and_what_is_allowed(override: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_params(deep_update(repo_params(), override), "params.yaml")
    message = str(info.value)
    assert message.startswith("params.yaml: ")
    assert expected in message
    assert "\n" not in message


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("seed: 0\nrun:\n  device: [cpu\n")
    with pytest.raises(ConfigError, match=r"params.yaml:\d+: not valid YAML"):
        load_params(bad)


def test_the_committed_json_schema_matches_the_typed_model() -> None:
    committed = yaml.safe_load((REPO / "workflow/schemas/params.schema.yaml").read_text())
    assert committed == json_schema(), "regenerate it: mechatlas config schema"


def test_the_json_schema_rejects_what_the_typed_model_rejects() -> None:
    import jsonschema

    bad = deep_update(repo_params(), {"run": {"dtype": "float8"}})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json_schema())
    jsonschema.validate(repo_params(), json_schema())


def test_the_params_hash_changes_with_any_value_and_only_then() -> None:
    a = validate_params(repo_params())
    b = validate_params(repo_params())
    c = validate_params(deep_update(repo_params(), {"organism": {"training": {"seed": 1}}}))
    assert params_hash(a) == params_hash(b) != params_hash(c)


def test_the_team_overlay_merges_into_params_and_validates(tmp_path: Path) -> None:
    from mechatlas.config import apply_overlay

    params, merged = apply_overlay(REPO / "params.yaml", REPO / "params" / "team.yaml")
    assert {"organism", "qwen3_0_6b", "llama3_1_8b"} <= set(params.models)
    assert params.run.device == "auto" and params.run.dtype == "bfloat16"
    assert params.refusal_direction.max_new_tokens >= 64
    assert params.models["llama3_1_8b"].chat_date == "26 Jul 2024"
    assert params.run.batch_sizes == "auto"  # fitted to the free memory, at most the sizes written
    assert merged["organism"]["data"]["seed"] == 0  # untouched sections survive the merge


def test_an_overlay_with_a_bad_value_is_refused_naming_the_key(tmp_path: Path) -> None:
    from mechatlas.config import apply_overlay
    from mechatlas.errors import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text("refusal_direction:\n  rubric_max_new_tokens: 8\n")
    with pytest.raises(ConfigError, match="rubric_max_new_tokens"):
        apply_overlay(REPO / "params.yaml", bad)


def test_every_model_names_the_weights_folder_dvc_tracks() -> None:
    from mechatlas.errors import ConfigError

    raw = repo_params()
    del raw["models"]["organism"]["checkpoint"]
    with pytest.raises(ConfigError, match=r"models\.organism\.checkpoint.*checkpoint: data/models/organism"):
        validate_params(raw, complete=True)
    validate_params(raw)  # a partial mapping (a CLI's) derives it


def test_a_checkpoint_that_contradicts_its_source_is_refused() -> None:
    from mechatlas.errors import ConfigError

    raw = deep_update(
        repo_params(), {"models": {"organism": {"checkpoint": "data/models/planted/redundant"}}}
    )
    with pytest.raises(
        ConfigError, match="does not match source 'organism'; write `checkpoint: data/models/organism`"
    ):
        validate_params(raw, complete=True)


def test_a_hub_model_loads_from_its_snapshot_once_downloaded(tmp_path: Path) -> None:
    from mechatlas.config import ModelSpec

    folder = tmp_path / "Qwen3-0.6B"
    spec = ModelSpec(source="Qwen/Qwen3-0.6B", checkpoint=str(folder))
    assert spec.is_hub_id and spec.weights == "Qwen/Qwen3-0.6B"  # not downloaded: the hub id
    folder.mkdir()
    assert spec.weights == str(folder)
    planted = ModelSpec(source="data/models/planted/one_direction")
    assert not planted.is_hub_id and planted.weights == "data/models/planted/one_direction"
