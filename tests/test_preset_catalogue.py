"""Every shipped preset is valid, complete and points at real download URLs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from dashboard.comfy.folders import FOLDER_TYPES
from dashboard.services.catalogue import load_preset_file
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
