"""extra_model_paths.yaml, read as ComfyUI reads it, and used by the standalone server."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.app import create_app
from dashboard.cli import main
from dashboard.comfy.extra_paths import ExtraModelPath, add_extra_paths, load_extra_model_paths
from dashboard.comfy.folders import standalone_roots
from dashboard.config import ConfigError
from dashboard.services.models import standalone_model_roots

A1111 = """
a111:
    base_path: sd-webui/

    checkpoints: models/Stable-diffusion
    configs: models/Stable-diffusion
    vae: models/VAE
    loras: |
         models/Lora
         models/LyCORIS
    upscale_models: |
                  models/ESRGAN
                  models/RealESRGAN
    embeddings: embeddings
"""


def write(tmp_path: Path, text: str, name: str = "extra_model_paths.yaml") -> Path:
    path = tmp_path / "conf" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def by_type(entries: list[ExtraModelPath]) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for e in entries:
        found.setdefault(e.folder_type, []).append(e.path)
    return found


def test_comfyui_example_resolves_against_base_path_relative_to_the_yaml(tmp_path):
    base = tmp_path / "conf" / "sd-webui"
    entries = load_extra_model_paths(write(tmp_path, A1111))
    assert by_type(entries) == {
        "checkpoints": [base / "models/Stable-diffusion"],
        "configs": [base / "models/Stable-diffusion"],
        "vae": [base / "models/VAE"],
        "loras": [base / "models/Lora", base / "models/LyCORIS"],
        "upscale_models": [base / "models/ESRGAN", base / "models/RealESRGAN"],
        "embeddings": [base / "embeddings"],
    }
    assert not any(e.is_default for e in entries)


def test_lists_absolute_paths_legacy_names_and_skips_custom_nodes(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    entries = load_extra_model_paths(write(tmp_path, f"""
comfyui:
    is_default: true
    unet: |
        models/unet
        {elsewhere}/unet
    clip: [models/clip, models/clip2]
    custom_nodes: custom_nodes
    ipadapter: models/ipadapter
empty_section:
"""))
    conf = tmp_path / "conf"
    assert by_type(entries) == {
        "diffusion_models": [conf / "models/unet", elsewhere / "unet"],
        "text_encoders": [conf / "models/clip", conf / "models/clip2"],
        "ipadapter": [conf / "models/ipadapter"],
    }
    assert all(e.is_default for e in entries)


def test_base_path_expands_home_and_variables_and_normalises(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MODELS_ROOT", str(tmp_path / "store"))
    entries = load_extra_model_paths(write(tmp_path, """
home:
    base_path: ~/ai
    loras: ./a/../loras/
vars:
    base_path: $MODELS_ROOT/x
    vae: vae
"""))
    assert by_type(entries) == {"loras": [tmp_path / "home/ai/loras"], "vae": [tmp_path / "store/x/vae"]}


def test_empty_file_adds_nothing(tmp_path):
    assert load_extra_model_paths(write(tmp_path, "# nothing here\n")) == []


@pytest.mark.parametrize(("text", "complaint"), [
    ("a: [unclosed", "not valid YAML"),
    ("- a\n- b\n", "expected sections"),
    ("a: just a string\n", "section 'a' must be a mapping"),
    ("a:\n  loras: 3\n", "'loras': expected a path"),
    ("a:\n  loras: [x, 3]\n", "'loras': expected a path"),
    ("a:\n  is_default: yes please\n  loras: x\n", "is_default must be true or false"),
    ("a:\n  base_path: [x]\n  loras: x\n", "base_path must be a path"),
    ("a:\n  3: x\n", "is not a name"),
])
def test_malformed_yaml_is_a_config_error_naming_the_problem(tmp_path, text, complaint):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_extra_model_paths(path)
    assert complaint in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_extra_model_paths(tmp_path / "nope.yaml")


def test_added_like_comfyui_does_defaults_first_no_duplicates(tmp_path):
    models = tmp_path / "models"
    roots = standalone_roots(models)
    merged = add_extra_paths(roots, [
        ExtraModelPath("loras", tmp_path / "x"),
        ExtraModelPath("loras", models / "loras"),  # already there: not twice
        ExtraModelPath("loras", tmp_path / "fast", is_default=True),
        ExtraModelPath("vae", models / "vae", is_default=True),
        ExtraModelPath("ipadapter", tmp_path / "ip"),
    ])
    assert merged["loras"] == [tmp_path / "fast", models / "loras", tmp_path / "x"]
    assert merged["vae"] == [models / "vae"]
    assert merged["ipadapter"] == [tmp_path / "ip"]
    assert roots["loras"] == [models / "loras"]  # the input is not changed


def test_standalone_roots_include_the_yaml(tmp_path):
    path = write(tmp_path, "mine:\n  base_path: /srv/models\n  loras: lora\n")
    roots = standalone_model_roots(tmp_path / "models", path)
    assert roots["loras"] == [tmp_path / "models" / "loras", Path("/srv/models/lora")]
    assert standalone_model_roots(tmp_path / "models") == standalone_roots(tmp_path / "models")


def test_app_with_a_malformed_yaml_does_not_start(settings, tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        create_app(settings.replace(extra_model_paths=write(tmp_path, "a: [unclosed")))


def test_command_line_flag_and_its_error(tmp_path, monkeypatch, capsys):
    for var in ("DASHBOARD_EXTRA_MODEL_PATHS", "DASHBOARD_PORT", "DASHBOARD_WORKSPACE"):
        monkeypatch.delenv(var, raising=False)
    bad = write(tmp_path, "a:\n  loras: 3\n")
    assert main(["--workspace", str(tmp_path / "ws"), "--extra-model-paths", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and "'loras': expected a path" in err
    monkeypatch.setenv("DASHBOARD_EXTRA_MODEL_PATHS", str(tmp_path / "missing.yaml"))
    assert main(["--workspace", str(tmp_path / "ws")]) == 2
    assert "file not found" in capsys.readouterr().err
