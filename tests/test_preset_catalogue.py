"""Every shipped preset is valid, complete and points at real download URLs."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest
import yaml
from comfyui_standin import COMFYUI_0_3_64_FOLDERS

from dashboard.comfy.folders import FOLDER_TYPES
from dashboard.services.catalogue import Catalogue, load_preset_file
from dashboard.services.preset_schema import CATEGORIES

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted((ROOT / "presets").rglob("*.yaml"))
WORKFLOW_IDS = {p.stem for p in (ROOT / "workflows").glob("*.json")}


@pytest.fixture(scope="module")
def presets():
    return {path: load_preset_file(path, "shipped", set(FOLDER_TYPES)) for path in FILES}


def test_at_least_56_presets_in_all_three_categories(presets):
    assert len(presets) >= 56
    by_category = Counter(p.category for p in presets.values())
    assert set(by_category) == set(CATEGORIES)
    assert "WAN_22_5B_TIV2" in {p.id for p in presets.values()}


def test_ids_are_unique_and_match_file_and_folder(presets):
    ids = [p.id for p in presets.values()]
    assert len(ids) == len(set(ids))
    for path, preset in presets.items():
        assert path.stem == preset.id
        assert path.parent.name == preset.type


def test_dependencies_and_workflows_exist(presets):
    ids = {p.id for p in presets.values()}
    for preset in presets.values():
        assert set(preset.dependencies) <= ids, preset.id
        assert set(preset.workflows) <= WORKFLOW_IDS, preset.id


def test_files_stay_in_known_model_folders_and_have_sizes(presets):
    for preset in presets.values():
        assert any(not f.optional for f in preset.files), preset.id
        for f in preset.files:
            assert f.folder in FOLDER_TYPES, (preset.id, f.path)
            assert ".." not in f.relpath.split("/") and not f.relpath.startswith("/")
            assert f.size > 0


def test_sources_are_download_urls_named_like_the_saved_file(presets):
    for preset in presets.values():
        for f in preset.files:
            if f.repo is not None:
                assert f.repo.count("/") == 1 and f.revision
                assert Path(f.repo_file).name == f.name, (preset.id, f.path)
            else:
                assert f.url.startswith("https://") and "huggingface.co" not in f.url


def test_raw_files_have_no_blob_urls_and_describe_themselves():
    for path in FILES:
        text = path.read_text()
        assert "/blob/" not in text, path.name
        data = yaml.safe_load(text)
        assert data.get("description") and data.get("use_case") and data.get("tags"), path.name
        assert "license" in data and "gated" in data and "vram_gb" in data.get("requirements", {}), path.name


def test_presets_readme_documents_the_schema():
    readme = (ROOT / "presets" / "README.md").read_text()
    for field in ("id", "category", "files", "source", "sha256", "optional", "dependencies", "gated"):
        assert f"`{field}`" in readme


#: The shipped presets that use a model folder type ComfyUI 0.3.64 does not have.
FOR_NEWER_COMFYUI = {"HUNYUAN_VIDEO_1_5_I2V", "HUNYUAN_VIDEO_1_5_T2V", "LTX_2_3_T2V", "LTX_2_T2V"}


async def test_presets_for_a_newer_comfyui_are_listed_with_the_folder_they_need(tmp_path, caplog):
    user = tmp_path / "presets"
    user.mkdir()
    (user / "MY_LTX.yaml").write_text(yaml.safe_dump({
        "id": "MY_LTX", "name": "My LTX", "category": "Video Generation", "type": "video",
        "dependencies": ["LTX_2_T2V"], "files": [{"path": "loras/my_ltx.safetensors", "size": 1,
                                                  "url": "https://example.com/my_ltx.safetensors"}]}))
    catalogue = Catalogue(ROOT / "presets", user, set(COMFYUI_0_3_64_FOLDERS), templates=False)
    with caplog.at_level(logging.INFO, logger="dashboard"):
        await catalogue.refresh()
        (user / "other.yaml").write_text("id: [")  # a change: the catalogue is merged again
        await catalogue.refresh(force=True)
    assert [e["file"] for e in catalogue.errors] == ["other.yaml"]  # none of the shipped presets is an error
    newer = {p.id: p.missing_folders for p in catalogue.presets.values() if p.missing_folders}
    assert newer == {**dict.fromkeys(FOR_NEWER_COMFYUI, ("latent_upscale_models",)),
                     "MY_LTX": ("latent_upscale_models",)}  # through its dependency
    notes = [r for r in caplog.records if "need a newer ComfyUI" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.INFO
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "other.yaml" not in r.getMessage()]


async def test_a_folder_no_comfyui_has_is_still_an_error(tmp_path):
    (tmp_path / "TYPO.yaml").write_text(yaml.safe_dump({
        "id": "TYPO", "name": "Typo", "category": "Image Generation", "type": "image",
        "files": [{"path": "lorass/x.safetensors", "size": 1, "url": "https://example.com/x.safetensors"}]}))
    catalogue = Catalogue(tmp_path / "none", tmp_path, set(COMFYUI_0_3_64_FOLDERS), templates=False)
    await catalogue.refresh()
    assert catalogue.presets == {}
    assert catalogue.errors == [{"file": "TYPO.yaml", "error": "files.0: unknown model folder 'lorass'"}]
