from pathlib import Path

import pytest
from experiment_support import scripted_toml

from sparring.errors import ConfigError
from sparring.experiments import load_config, parse_config


def test_builtin_default_grid_is_valid():
    config, text = load_config(None)
    assert "[[targets]]" in text
    interventions = [t.intervention for t in config.targets]
    assert interventions == ["plain", "prompted", "rejection-sampling"]
    assert config.samples_per_turn == 2
    assert config.default_run_id().startswith("default-")


def test_unknown_top_level_key_is_named():
    with pytest.raises(ConfigError, match=r"cfg.toml: sampels_per_turn: unknown key"):
        parse_config("sampels_per_turn = 2\n" + scripted_toml(), "cfg.toml")


def test_unknown_backend_argument_is_named_with_its_path():
    text = scripted_toml().replace('backend = "scripted"', 'backend = "scripted"\nrespones = ["x"]')
    with pytest.raises(ConfigError, match=r"models\[0\]\.respones: unknown key"):
        parse_config(text)


def test_wrong_type_in_intervention_argument_is_named():
    text = scripted_toml().replace("k = 4", 'k = "many"')
    with pytest.raises(ConfigError, match=r"targets\[1\]\.k: .*integer"):
        parse_config(text)


def test_rejection_sampling_cannot_keep_more_than_it_draws():
    text = scripted_toml().replace("k = 4", "k = 4\nm = 5")
    with pytest.raises(ConfigError, match=r"targets\[1\].*m=5 cannot exceed k=4"):
        parse_config(text)


def test_unknown_component_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"attacks\[0\]: unknown attack 'hh'; expected one of: .*hh-rlhf"):
        parse_config(scripted_toml().replace('kind = "hh-rlhf"', 'kind = "hh"'))


def test_target_must_reference_a_declared_model():
    with pytest.raises(ConfigError, match=r"targets\[0\]\.model: no model named 'nope'"):
        parse_config(scripted_toml().replace('model = "fake"', 'model = "nope"', 1))


def test_duplicate_target_names_are_rejected():
    text = scripted_toml().replace('intervention = "rejection-sampling"\nk = 4', 'intervention = "plain"')
    with pytest.raises(ConfigError, match="duplicate name 'fake/plain'"):
        parse_config(text)


def test_toml_syntax_error_names_file_and_line(tmp_path: Path):
    path = tmp_path / "broken.toml"
    path.write_text('name = "x"\nturns = = 3\n')
    with pytest.raises(ConfigError, match=r"broken.toml: invalid TOML: .*line 2"):
        load_config(path)


def test_missing_config_file_is_reported(tmp_path: Path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_value_out_of_range_is_named():
    with pytest.raises(ConfigError, match=r"samples_per_turn: Input should be greater than or equal to 1"):
        parse_config(scripted_toml(samples_per_turn=0))


def test_fingerprint_ignores_database_and_concurrency():
    a = parse_config(scripted_toml())
    b = parse_config(scripted_toml(concurrency=2, database="sqlite:///other.db"))
    c = parse_config(scripted_toml(seed=7))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
