"""config.toml: every setting's type and range is checked when it is read; a bad file is one line, never an internal
error, and nothing is written."""

import os
from pathlib import Path

import pytest

from journal import Journal
from tests.helpers import run_cli
from workshop.runner.runs import list_runs
from workshop.settings import Settings, SettingsError, load_settings


def write_config(text: str) -> Path:
    path = Path(os.environ["PROMPTISM_CONFIG"])
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("config, fragment", [
    ("not toml [", "is not valid TOML"),
    ('max_batch = "eight"', "max_batch must be a whole number of 1 or more, not 'eight'"),
    ("max_batch = 0", "max_batch must be a whole number of 1 or more, not 0"),
    ("max_batch = true", "max_batch must be"),
    ("model = 5", "model must be a model name (text), not 5"),
    ('model = ""', "model must be"),
    ("clip = []", "clip must be"),
    ("co2_g_per_kwh = -1", "co2_g_per_kwh must be a number of 0 or more"),
    ("co2_g_per_kwh = nan", "co2_g_per_kwh must be"),
    ('model_paths = "/models/x"', "model_paths must be a list of folder paths"),
    ("model_paths = [1]", "model_paths must be"),
    ('colour = "red"', "unknown setting 'colour'"),
    ('compile = "yes"', "compile must be true or false, not 'yes'"),
    ('sampler = "Euler b"', "sampler must be an AUTOMATIC1111 sampler name (`promptism samplers`): Euler, Euler a,"),
    ('ray = "head node"', 'ray must be "auto", a Ray cluster\'s address (HOST:PORT or ray://HOST:10001), or "off"'),
])
@pytest.mark.parametrize("command", [["generate", "a red circle"], ["grid", "-p", "a red circle", "--dry-run"], ["models"]])
def test_a_bad_config_is_one_line_and_nothing_is_written(config, fragment, command, tmp_path, capsys):
    path = write_config(config)
    j = tmp_path / "j"
    code, out, err = run_cli(capsys, *command, *(["--journal", str(j)] if command[0] != "models" else []))
    assert code == 1 and err.count("\n") == 1 and fragment in err and str(path) in err, err
    assert "internal error" not in err and not j.exists()


def test_a_bad_config_stops_the_workshop_before_it_opens(capsys):
    write_config('max_batch = "eight"')
    code, out, err = run_cli(capsys, "tui")
    assert code == 1 and err.count("\n") == 1 and "max_batch" in err and "internal error" not in err, err


def test_good_settings_load_typed_and_are_used(tmp_path, capsys):
    write_config('model = "tiny"\nmax_batch = 3\nco2_g_per_kwh = 250\nclip = "none"\nmodel_paths = ["/models/a"]\n')
    settings = load_settings()
    assert settings == Settings(model="tiny", clip="none", max_batch=3, co2_g_per_kwh=250.0, model_paths=("/models/a",))
    assert isinstance(settings.co2_g_per_kwh, float)
    j = tmp_path / "j"
    code, out, err = run_cli(capsys, "generate", "a red circle", "--seeds", "1-4", "--steps", "1", "--journal", str(j))
    assert code == 0, err
    run = list_runs(Journal.open(j))[0]
    assert run.record.model.id == "tiny" and run.record.layout == [[0, 1, 2], [3]] and run.record.clip is None


def test_no_config_file_means_the_defaults(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("PROMPTISM_CONFIG")  # the user config directory's config.toml, which may be absent
    assert not (Path(os.environ["XDG_CONFIG_HOME"]) / "promptism" / "config.toml").exists()
    assert load_settings() == Settings()
    monkeypatch.setenv("PROMPTISM_CONFIG", str(tmp_path / "nonexistent.toml"))  # named, so it must be there
    with pytest.raises(SettingsError, match="PROMPTISM_CONFIG names .*nonexistent.toml.*which is not a file"):
        load_settings()
    code, _, err = run_cli(capsys, "grid", "-p", "a red circle", "--dry-run")
    assert code == 1 and err.count("\n") == 1 and "unset PROMPTISM_CONFIG" in err, err
    monkeypatch.setenv("PROMPTISM_CONFIG", str(tmp_path / "empty.toml"))
    (tmp_path / "empty.toml").touch()
    monkeypatch.setenv("PROMPTISM_SERVICE", "bogus")
    code, _, err = run_cli(capsys, "generate", "a red circle", "--model", "tiny", "--steps", "1",
                           "--journal", str(tmp_path / "j"))
    assert code == 1 and err == "promptism: PROMPTISM_SERVICE is 'bogus': set it to on or off (or unset it)\n", err
    assert not (tmp_path / "j").exists()
    monkeypatch.setenv("PROMPTISM_SERVICE", "off")
    with pytest.raises(SettingsError):
        write_config("max_batch = 1.5")
        load_settings()


@pytest.mark.parametrize("value, address", [("auto", "auto"), ("OFF", None), (" 10.0.0.5:6379", "10.0.0.5:6379"),
                                            ("ray://head:10001", "ray://head:10001")])
def test_the_ray_setting_names_a_cluster_or_none(value, address):
    write_config(f'ray = "{value}"')
    assert load_settings().ray == address
