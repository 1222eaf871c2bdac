"""The error classes: one per code, families to catch, and the reasons the README lists."""

import re
from pathlib import Path

import pytest

from dashboard import errors
from dashboard.errors import Conflict, DashboardError, DownloadFailed, ErrorCode, GatedModel, NotFound

README = Path(__file__).resolve().parents[1] / "README.md"


def _concrete() -> list[type[DashboardError]]:
    found, todo = [], [DashboardError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.code is not None:
            found.append(cls)
    return found


def test_every_code_has_a_class_and_of_finds_it():
    for code in ErrorCode:
        error = DashboardError.of(code, "x", {"a": 1})
        assert error.code == code and error.status == code.status and error.reason is None
        assert error.to_dict() == {"error": {"code": str(code), "message": "x", "details": {"a": 1}}}


def test_families_cannot_be_raised_and_catch_their_kinds():
    for family in (Conflict, errors.TooManyRequests, errors.Unavailable):
        with pytest.raises(TypeError):
            family("no code")
    assert isinstance(errors.PresetNotFound("x"), NotFound) and errors.PresetNotFound("x").status == 404
    assert isinstance(errors.ModelInUse("x"), Conflict) and errors.ModelInUse("x").status == 409
    gated = GatedModel("accept the licence", {"repo": "a/b"})
    assert isinstance(gated, DownloadFailed) and isinstance(gated, errors.AccessRefused)
    assert gated.to_dict()["error"] == {"code": "DOWNLOAD_FAILED", "message": "accept the licence",
                                        "details": {"repo": "a/b", "reason": "gated"}}


def test_the_readme_lists_every_download_failure_reason():
    reasons = {cls.reason for cls in _concrete() if issubclass(cls, DownloadFailed) and cls.reason}
    text = README.read_text(encoding="utf-8")
    paragraph = text[text.index("A `DOWNLOAD_FAILED` says why"):]
    paragraph = paragraph[:paragraph.index("\n\n")]
    assert set(re.findall(r"`([a-z_]+)`", paragraph)) - {"details"} == reasons
