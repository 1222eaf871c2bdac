"""Settings: environment, flags, defaults, and a clear error for every malformed value."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.config import ConfigError, Settings


def test_defaults_follow_the_workspace(tmp_path):
    settings = Settings.from_env({}, workspace=str(tmp_path))
    assert settings.host == "127.0.0.1" and settings.port == 8080
    assert settings.models_dir == tmp_path / "models"
    assert settings.data_dir == tmp_path / ".dashboard"
    assert settings.comfyui_url is None and settings.status_interval == 2.0


def test_flags_win_over_environment(tmp_path):
    env = {"DASHBOARD_PORT": "9000", "DASHBOARD_HOST": "0.0.0.0", "COMFYUI_URL": "http://127.0.0.1:8188/"}
    settings = Settings.from_env(env, port="9100")
    assert settings.port == 9100 and settings.host == "0.0.0.0"
    assert settings.comfyui_url == "http://127.0.0.1:8188"


def test_environment_wins_over_defaults(tmp_path):
    settings = Settings.from_env({"DASHBOARD_MODELS_DIR": str(tmp_path / "m")}, default_port=None,
                                 defaults={"models_dir": "/elsewhere"})
    assert settings.models_dir == tmp_path / "m"
    assert settings.port is None


def test_lists_and_flags_parse():
    settings = Settings.from_env({"PRESET_DOWNLOAD": " A, B ,,C", "DASHBOARD_OFFICIAL_TEMPLATES": "off"})
    assert settings.preset_download == ("A", "B", "C")
    assert settings.official_templates is False


def test_secrets_are_not_in_repr():
    settings = Settings.from_env({"HF_TOKEN": "hf_secret", "CIVITAI_TOKEN": "civ_secret"})
    assert "secret" not in repr(settings)


@pytest.mark.parametrize(("var", "value"), [
    ("DASHBOARD_PORT", "http"), ("DASHBOARD_PORT", "70000"), ("DASHBOARD_PORT", "-1"),
    ("COMFYUI_URL", "localhost:8188"), ("COMFYUI_URL", "ftp://x"), ("HF_ENDPOINT", "nope"),
    ("DASHBOARD_STATUS_INTERVAL", "0"), ("DASHBOARD_STATUS_INTERVAL", "fast"),
    ("DASHBOARD_MAX_DOWNLOADS", "0"), ("DASHBOARD_MAX_DOWNLOADS", "2.5"), ("DASHBOARD_MAX_QUEUE", "many"),
    ("DASHBOARD_OFFICIAL_TEMPLATES", "maybe"), ("DASHBOARD_MODELS_DIR", "bad\0path"),
])
def test_malformed_values_name_their_variable(var, value):
    with pytest.raises(ConfigError, match=var):
        Settings.from_env({var: value})


def test_empty_values_mean_unset():
    assert Settings.from_env({"DASHBOARD_PORT": "", "COMFYUI_URL": " "}).port == 8080


def test_paths_are_absolute():
    assert Settings.from_env({"DASHBOARD_WORKSPACE": "rel/ws"}).workspace == Path("rel/ws").absolute()


def test_a_malformed_flag_names_the_flag_not_the_variable():
    with pytest.raises(ConfigError, match=r"^--port: expected a port number, got 'abc'$"):
        Settings.from_env({"DASHBOARD_PORT": "9000"}, flags={"port": "abc"})
    with pytest.raises(ConfigError, match=r"^--models-dir: "):
        Settings.from_env({}, flags={"models_dir": "bad\0path"})
    with pytest.raises(ConfigError, match=r"^--comfyui-url: "):
        Settings.from_env({}, flags={"comfyui_url": "localhost:8188"})


def test_a_flag_not_given_leaves_the_variable_named():
    with pytest.raises(ConfigError, match=r"^DASHBOARD_PORT: "):
        Settings.from_env({"DASHBOARD_PORT": "abc"}, flags={"port": None})


def test_flags_win_over_the_environment():
    settings = Settings.from_env({"DASHBOARD_PORT": "9000", "DASHBOARD_DEV": "false"}, flags={"port": "0", "dev": True})
    assert settings.port == 0 and settings.dev is True


def test_the_development_switch_is_off_unless_set():
    assert Settings.from_env({}).dev is False
    assert Settings.from_env({"DASHBOARD_DEV": "true"}).dev is True
    with pytest.raises(ConfigError, match="DASHBOARD_DEV"):
        Settings.from_env({"DASHBOARD_DEV": "maybe"})
