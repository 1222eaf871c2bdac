"""Downloading one model from a URL (POST /api/models/download, the `download_model` action): Hugging
Face and Civitai URL forms end to end against protocol-faithful stand-ins, tokens, refusals, bad input."""

from __future__ import annotations

import json

import pytest
from civitai import FakeCivitai, running_civitai
from downloads_support import FAST_RETRY, Events, sha256_of

from dashboard.api.context import SERVICES
from dashboard.services.downloads.records import record_path

MB = 1024 * 1024


@pytest.fixture
def civitai():
    """A fake Civitai on 127.0.0.1 (API and downloads at `civitai.url`, its CDN at `civitai.cdn_url`)."""
    civitai = FakeCivitai()
    with running_civitai(civitai):
        yield civitai


@pytest.fixture
def app(make_client, hub, civitai):
    """Start an app that downloads from the fake hub and the fake Civitai; returns (client, events)."""

    async def start(**changes):
        client = await make_client(**{"hf_endpoint": hub.url, "civitai_endpoint": civitai.url, **changes})
        client.app[SERVICES].downloads.transfer.retry = FAST_RETRY
        return client, Events(client)

    return start


async def download(client, status=202, **body):
    response = await client.post("/api/models/download", json=body)
    assert response.status == status, await response.text()
    return await response.json()


async def finished(client, events, answer) -> dict:
    """The download's entry in GET /api/downloads once it completed."""
    done = await events.wait("download_complete", lambda d: d["download_id"] == answer["download_id"])
    assert done["status"] == "success" and done["preset_id"] is None
    listing = await (await client.get("/api/downloads")).json()
    return next(d for d in listing["downloads"] if d["id"] == answer["download_id"])


async def listed(client, path) -> dict:
    models = (await (await client.get("/api/models")).json())["models"]
    return next(m for m in models if m["path"] == path)


async def nothing_queued(client) -> None:
    assert (await (await client.get("/api/downloads")).json())["total"] == 0


# ---- Civitai ----

@pytest.mark.parametrize("form", ["download", "page", "page_with_slug", "air", "api"])
async def test_each_civitai_form_lands_verified_with_its_source(app, settings, civitai, form):
    version = civitai.add_version(2514310, model_id=827184, name="waiIllustrious_v160.safetensors", size=3 * MB)
    client, events = await app()
    url = {"download": f"{civitai.url}/api/download/models/2514310",
           "page": f"{civitai.url}/models/827184?modelVersionId=2514310",
           "page_with_slug": f"{civitai.url}/models/827184/wai-illustrious-sdxl?modelVersionId=2514310",
           "air": "urn:air:sdxl:checkpoint:civitai:827184@2514310",
           "api": f"{civitai.url}/api/v1/model-versions/2514310"}[form]
    answer = await download(client, url=url, type="loras")
    assert answer["path"] == "loras/waiIllustrious_v160.safetensors"
    assert answer["download_id"].startswith("dl_") and answer["status"] in ("queued", "downloading")
    entry = await finished(client, events, answer)
    assert entry["preset_id"] is None and entry["path"] == answer["path"] and entry["status"] == "completed"
    assert entry["source"]["kind"] == "civitai" and entry["source"]["version_id"] == 2514310
    target = settings.models_dir / "loras" / "waiIllustrious_v160.safetensors"
    assert sha256_of(target) == version.sha256
    assert not list(target.parent.glob("*.part*"))
    record = json.loads(record_path(target).read_text())
    assert record["sha256"] == version.sha256 and record["preset_id"] is None
    assert record["source"]["kind"] == "civitai" and record["source"]["model_id"] == 827184
    assert record["source"]["version_id"] == 2514310 and record["source"]["url"] == url
    model = await listed(client, answer["path"])
    assert model["source"]["kind"] == "civitai" and model["source"]["version_id"] == 2514310


async def test_civitai_token_goes_to_civitai_only_never_to_its_cdn(app, settings, civitai):
    version = civitai.add_version(11, model_id=1, name="gated.safetensors", size=2 * MB, access="login")
    civitai.tokens.add("civ_secret")
    client, events = await app(civitai_token="civ_secret")
    answer = await download(client, url=f"{civitai.url}/api/download/models/11", type="loras",
                            filename="mine.safetensors", subfolder="civitai/sdxl")
    assert answer["path"] == "loras/civitai/sdxl/mine.safetensors"
    await finished(client, events, answer)
    assert sha256_of(settings.models_dir / "loras" / "civitai" / "sdxl" / "mine.safetensors") == version.sha256
    to_civitai = civitai.requests_to(civitai.url)
    to_cdn = civitai.requests_to(civitai.cdn_url)
    assert to_civitai and to_cdn
    assert all(r.headers.get("Authorization") == "Bearer civ_secret" for r in to_civitai)
    assert all("Authorization" not in r.headers for r in to_cdn)
    browsers = ("mozilla", "chrome", "safari", "firefox", "opera", "edge")
    assert not any(b in r.headers.get("User-Agent", "").lower() for r in civitai.requests for b in browsers)


async def test_a_login_required_file_without_a_token_says_which_token(app, civitai):
    civitai.add_version(12, model_id=1, name="login.safetensors", access="login")
    client, _events = await app()
    body = await download(client, status=502, url=f"{civitai.url}/api/download/models/12", type="loras")
    error = body["error"]
    assert error["code"] == "DOWNLOAD_FAILED" and error["details"]["reason"] == "unauthorized"
    assert error["details"]["token"] == "CIVITAI_TOKEN" and "logged in" in error["details"]["message"]
    await nothing_queued(client)


async def test_a_refused_civitai_token_is_reported_as_such(app, civitai):
    civitai.add_version(13, model_id=1, name="login.safetensors", access="login")
    client, _events = await app(civitai_token="not_known")
    error = (await download(client, status=502, url=f"{civitai.url}/api/download/models/13", type="loras"))["error"]
    assert error["details"]["reason"] == "token_refused" and error["details"]["token"] == "CIVITAI_TOKEN"


async def test_early_access_is_a_clear_error_until_bought(app, settings, civitai):
    version = civitai.add_version(14, model_id=2, name="early.safetensors", access="early_access")
    civitai.tokens.add("civ_user")
    client, events = await app(civitai_token="civ_user")
    error = (await download(client, status=502, url="urn:air:sdxl:lora:civitai:2@14", type="loras"))["error"]
    assert error["code"] == "DOWNLOAD_FAILED" and error["details"]["reason"] == "early_access"
    assert error["details"]["token"] == "CIVITAI_TOKEN" and error["details"]["deadline"].startswith("2030")
    await nothing_queued(client)
    version.buyers.add("civ_user")
    answer = await download(client, url="urn:air:sdxl:lora:civitai:2@14", type="loras")
    await finished(client, events, answer)
    assert sha256_of(settings.models_dir / "loras" / "early.safetensors") == version.sha256


async def test_an_unknown_civitai_version_is_a_clear_error(app, civitai):
    client, _events = await app()
    error = (await download(client, status=502, url=f"{civitai.url}/models/5?modelVersionId=999", type="loras"))
    assert error["error"]["details"]["reason"] == "file_not_found" and "999" in error["error"]["message"]
    await nothing_queued(client)


# ---- Hugging Face ----

@pytest.mark.parametrize("action", ["resolve", "blob"])
async def test_hugging_face_files_land_verified_with_repo_and_revision(app, settings, hub, action):
    hub_file = hub.add_file("org/tiny", "weights/tiny.safetensors", size=3 * MB)
    client, events = await app()
    url = f"{hub.url}/org/tiny/{action}/main/weights/tiny.safetensors?download=true"
    answer = await download(client, url=url, type="checkpoints")
    assert answer["path"] == "checkpoints/tiny.safetensors"
    entry = await finished(client, events, answer)
    assert entry["source"]["kind"] == "huggingface" and entry["source"]["repo"] == "org/tiny"
    target = settings.models_dir / "checkpoints" / "tiny.safetensors"
    assert sha256_of(target) == hub_file.sha256
    source = json.loads(record_path(target).read_text())["source"]
    assert source["repo"] == "org/tiny" and source["repo_file"] == "weights/tiny.safetensors"
    assert source["revision"] == "main" and source["commit"] == hub_file.commit
    assert any(r.path == hub_file.url_path for r in hub.requests)  # always fetched through /resolve/
    model = await listed(client, answer["path"])
    assert model["source"]["kind"] == "huggingface" and model["source"]["revision"] == "main"


async def test_a_gated_hugging_face_file_says_which_token(app, hub):
    hub.add_file("org/gated", "g.safetensors", size=MB, gated=True)
    client, _events = await app()
    error = (await download(client, status=502, url=f"{hub.url}/org/gated/resolve/main/g.safetensors",
                            type="loras"))["error"]
    assert error["details"]["reason"] == "gated" and error["details"]["token"] == "HF_TOKEN"
    await nothing_queued(client)


async def test_a_given_sha256_is_what_the_file_is_checked_against(app, settings, hub):
    hub.add_file("org/tiny", "tiny.safetensors", size=MB)
    client, events = await app()
    answer = await download(client, url=f"{hub.url}/org/tiny/resolve/main/tiny.safetensors", type="loras",
                            sha256="0" * 64)
    failed = await events.wait("download_complete", lambda d: d["download_id"] == answer["download_id"])
    assert failed["status"] == "failed"
    assert not (settings.models_dir / "loras" / "tiny.safetensors").exists()


async def test_a_url_download_pauses_resumes_with_range_and_survives_a_restart(app, make_client, settings, hub,
                                                                             civitai):
    hub_file = hub.add_file("org/big", "big.safetensors", size=8 * MB)
    hub_file.faults.throttle_bps = 2 * MB
    client, events = await app()
    answer = await download(client, url=f"{hub.url}/org/big/resolve/main/big.safetensors", type="loras")
    await events.wait("download_progress", lambda d: d["progress"] > 0)
    paused = await client.post(f"/api/downloads/{answer['download_id']}/pause")
    assert (await paused.json())["status"] == "paused"
    part = settings.models_dir / "loras" / "big.safetensors.part"
    assert part.stat().st_size > 0
    await client.close()
    hub_file.faults.throttle_bps = None
    again = await make_client(hf_endpoint=hub.url, civitai_endpoint=civitai.url)  # a new process, same workspace
    again.app[SERVICES].downloads.transfer.retry = FAST_RETRY
    events = Events(again)
    entry = (await (await again.get(f"/api/downloads/{answer['download_id']}")).json())
    assert entry["status"] == "paused" and entry["preset_id"] is None and entry["path"] == "loras/big.safetensors"
    assert entry["source"]["kind"] == "huggingface"
    await again.post(f"/api/downloads/{answer['download_id']}/resume")
    await finished(again, events, answer)
    assert sha256_of(settings.models_dir / "loras" / "big.safetensors") == hub_file.sha256
    assert any(r.range and r.range[0] > 0 for r in hub.requests if r.method == "GET")


async def test_cancelling_a_url_download_removes_its_partial_file(app, settings, hub):
    hub_file = hub.add_file("org/big", "big.safetensors", size=8 * MB)
    hub_file.faults.throttle_bps = 2 * MB
    client, events = await app()
    answer = await download(client, url=f"{hub.url}/org/big/resolve/main/big.safetensors", type="loras")
    await events.wait("download_progress", lambda d: d["progress"] > 0)
    cancelled = await (await client.delete(f"/api/downloads/{answer['download_id']}")).json()
    assert cancelled["status"] == "cancelled"
    assert not list((settings.models_dir / "loras").iterdir())


async def test_the_same_path_twice_makes_one_download(app, hub):
    hub_file = hub.add_file("org/big", "big.safetensors", size=8 * MB)
    hub_file.faults.throttle_bps = 2 * MB
    client, _events = await app()
    url = f"{hub.url}/org/big/resolve/main/big.safetensors"
    first = await download(client, url=url, type="loras")
    second = await download(client, url=url, type="loras")
    assert second["download_id"] == first["download_id"]
    await client.delete(f"/api/downloads/{first['download_id']}")


# ---- Hosts listed in DASHBOARD_DOWNLOAD_HOSTS ----

async def test_a_listed_origin_serves_with_the_name_from_content_disposition(app, settings, civitai):
    version = civitai.add_version(21, model_id=3, name="from_disposition.safetensors", size=MB)
    client, events = await app(civitai_endpoint=None, download_hosts=(civitai.url,))
    # the stand-in's download URL on a host that is not Civitai here: a plain listed origin
    answer = await download(client, url=f"{civitai.url}/api/download/models/21", type="vae")
    assert answer["path"] == "vae/from_disposition.safetensors"
    entry = await finished(client, events, answer)
    assert entry["source"] == {"kind": "url", "url": f"{civitai.url}/api/download/models/21"}
    assert sha256_of(settings.models_dir / "vae" / "from_disposition.safetensors") == version.sha256


# ---- What is refused ----

BAD = [
    ({"url": "not a url"}, "url"),
    ({"url": "ftp://example.com/a.safetensors"}, "url"),
    ({"url": "https://example.com/a.safetensors"}, "url"),
    ({"url": "http://example.com/a.safetensors"}, "url"),
    ({"url": "https://huggingface.co/datasets/org/x/resolve/main/a.safetensors"}, "url"),
    ({"url": "https://huggingface.co/org/x/tree/main"}, "url"),
    ({"url": "urn:air:sdxl:lora:civitai:5"}, "url"),
    ({"url": "urn:air:sdxl:lora:huggingface:5@6"}, "url"),
    ({"url": "https://civitai.com/models/5"}, "url"),
    ({"url": "https://civitai.com/images/5"}, "url"),
    ({"type": "no_such_type"}, "type"),
    ({"filename": "a/b.safetensors"}, "filename"),
    ({"filename": "..\\b.safetensors"}, "filename"),
    ({"filename": ".."}, "filename"),
    ({"filename": "notes.txt"}, "filename"),
    ({"subfolder": "../escape"}, "subfolder"),
    ({"subfolder": "/etc"}, "subfolder"),
    ({"subfolder": "a/../../b"}, "subfolder"),
    ({"sha256": "xyz"}, "sha256"),
]


@pytest.mark.parametrize(("changes", "field"), BAD)
async def test_bad_input_is_refused_naming_the_field_and_queues_nothing(app, settings, hub, changes, field):
    hub.add_file("org/tiny", "tiny.safetensors", size=MB)
    client, _events = await app()
    body = {"url": f"{hub.url}/org/tiny/resolve/main/tiny.safetensors", "type": "loras", **changes}
    error = (await download(client, status=400, **body))["error"]
    assert error["code"] == "INVALID_REQUEST" and error["details"]["field"] == field, error
    await nothing_queued(client)
    assert not [p for p in settings.models_dir.rglob("*") if p.is_file()]


async def test_a_source_name_without_a_model_extension_asks_for_a_filename(app, hub):
    hub.add_file("org/tiny", "README.md", data=b"# hi", lfs=False)
    client, _events = await app()
    error = (await download(client, status=400, url=f"{hub.url}/org/tiny/resolve/main/README.md",
                            type="loras"))["error"]
    assert error["details"]["field"] == "filename" and "give a filename" in error["message"]


async def test_an_existing_file_is_a_conflict_unless_forced_then_replaced(app, settings, hub):
    hub_file = hub.add_file("org/tiny", "tiny.safetensors", size=MB)
    target = settings.models_dir / "loras" / "tiny.safetensors"
    target.write_bytes(b"mine")
    client, events = await app()
    url = f"{hub.url}/org/tiny/resolve/main/tiny.safetensors"
    error = (await download(client, status=409, url=url, type="loras"))["error"]
    assert error["code"] == "MODEL_EXISTS" and error["details"]["path"] == "loras/tiny.safetensors"
    await nothing_queued(client)
    assert target.read_bytes() == b"mine"
    answer = await download(client, url=url, type="loras", force=True)
    await finished(client, events, answer)
    assert sha256_of(target) == hub_file.sha256


# ---- The WebSocket action ----

async def test_download_model_over_the_socket(app, settings, civitai):
    version = civitai.add_version(31, model_id=4, name="socket.safetensors", size=MB)
    client, _events = await app()
    async with client.ws_connect("/ws") as socket:
        await socket.send_json({"type": "subscribe", "channels": ["downloads"]})
        await socket.send_json({"type": "action", "action": "download_model", "id": "d1",
                                "data": {"url": f"{civitai.url}/api/download/models/31", "type": "loras"}})
        result = await _receive(socket, "result")
        assert result["id"] == "d1" and result["success"]
        assert result["data"]["path"] == "loras/socket.safetensors"
        done = await _receive(socket, "download_complete")
        assert done["data"]["status"] == "success" and done["data"]["download_id"] == result["data"]["download_id"]
        await socket.send_json({"type": "action", "action": "download_model", "id": "d2",
                                "data": {"url": "https://example.com/x.safetensors", "type": "loras"}})
        error = await _receive(socket, "error")
        assert error["id"] == "d2" and error["data"]["code"] == "INVALID_REQUEST"
        assert error["data"]["details"]["field"] == "url"
    assert sha256_of(settings.models_dir / "loras" / "socket.safetensors") == version.sha256


async def _receive(socket, type_: str) -> dict:
    while True:
        message = await socket.receive_json(timeout=30)
        if message["type"] == type_:
            return message


def test_the_download_settings_are_read_and_checked():
    from dashboard.config import ConfigError, Settings

    settings = Settings.from_env({"DASHBOARD_DOWNLOAD_HOSTS": "Example.com, cdn.example.org:8443, http://10.0.0.5:9000",
                                  "CIVITAI_ENDPOINT": "http://127.0.0.1:9/"})
    assert settings.download_hosts == ("example.com", "cdn.example.org:8443", "http://10.0.0.5:9000")
    assert settings.civitai_endpoint == "http://127.0.0.1:9"
    assert Settings.from_env({}).download_hosts == ()
    with pytest.raises(ConfigError, match="DASHBOARD_DOWNLOAD_HOSTS"):
        Settings.from_env({"DASHBOARD_DOWNLOAD_HOSTS": "https://example.com/path"})


# ---- Dry run ----

async def test_a_dry_run_answers_what_would_be_downloaded_and_queues_nothing(app, settings, hub):
    hub_file = hub.add_file("org/tiny", "weights/tiny.safetensors", size=3 * MB)
    client, _events = await app()
    url = f"{hub.url}/org/tiny/resolve/main/weights/tiny.safetensors"
    response = await client.post("/api/models/download/check", json={"url": url, "type": "loras",
                                                                             "subfolder": "mine"})
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert answer["path"] == "loras/mine/tiny.safetensors" and answer["exists"] is False
    assert answer["size_bytes"] == 3 * MB and answer["size_gb"] == 0.0  # rounded to hundredths
    assert answer["source"]["kind"] == "huggingface" and answer["source"]["repo"] == "org/tiny"
    assert answer["source"]["commit"] == hub_file.commit
    assert any(r.path == hub_file.url_path for r in hub.requests)  # the source was asked
    await nothing_queued(client)
    assert not [p for p in settings.models_dir.rglob("*") if p.is_file()]
    assert not (settings.models_dir / "loras" / "mine").exists()


async def test_a_dry_run_is_refused_as_the_real_request_is(app, settings, hub):
    hub.add_file("org/tiny", "tiny.safetensors", size=MB)
    hub.add_file("org/gated", "g.safetensors", size=MB, gated=True)
    client, _events = await app()
    url = f"{hub.url}/org/tiny/resolve/main/tiny.safetensors"

    async def dry(status, **body):
        response = await client.post("/api/models/download/check", json=body)
        assert response.status == status, await response.text()
        return (await response.json())["error"]

    error = await dry(400, url="https://example.com/a.safetensors", type="loras")
    assert error["code"] == "INVALID_REQUEST" and error["details"]["field"] == "url"
    assert (await dry(400, url=url, type="no_such_type"))["details"]["field"] == "type"
    gated = await dry(502, url=f"{hub.url}/org/gated/resolve/main/g.safetensors", type="loras")
    assert gated["code"] == "DOWNLOAD_FAILED" and gated["details"]["token"] == "HF_TOKEN"
    target = settings.models_dir / "loras" / "tiny.safetensors"
    target.write_bytes(b"mine")
    assert (await dry(409, url=url, type="loras"))["code"] == "MODEL_EXISTS"
    forced = await client.post("/api/models/download/check", json={"url": url, "type": "loras", "force": True})
    assert forced.status == 200 and (await forced.json())["exists"] is True
    bad = await client.post("/api/models/download/check", json={"url": url, "type": "loras", "dry_run": True})
    assert bad.status == 400 and (await bad.json())["error"]["code"] == "INVALID_REQUEST"  # no such field
    await nothing_queued(client)
    assert target.read_bytes() == b"mine"


async def test_a_dry_run_over_the_socket(app, civitai):
    civitai.add_version(32, model_id=4, name="socket.safetensors", size=MB)
    client, _events = await app()
    async with client.ws_connect("/ws") as socket:
        await socket.send_json({"type": "action", "action": "check_model_download", "id": "d1", "data": {
            "url": f"{civitai.url}/api/download/models/32", "type": "loras"}})
        result = await _receive(socket, "result")
        assert result["success"] and result["data"]["path"] == "loras/socket.safetensors"
        assert result["data"]["source"]["kind"] == "civitai" and result["data"]["size_bytes"] == MB
    await nothing_queued(client)


async def test_the_check_says_under_which_licence_the_file_is_published(app, hub, civitai):
    hub.add_file("org/open", "open.safetensors", size=MB)
    hub.licenses["org/open"] = "apache-2.0"
    hub.add_file("org/quiet", "quiet.safetensors", size=MB)
    civitai.add_version(51, model_id=7, name="styled.safetensors", size=MB)
    client, _events = await app()

    async def check(url):
        response = await client.post("/api/models/download/check", json={"url": url, "type": "loras"})
        assert response.status == 200, await response.text()
        return (await response.json())["license"]

    assert await check(f"{hub.url}/org/open/resolve/main/open.safetensors") == {
        "name": "apache-2.0", "url": f"{hub.url}/org/open"}
    assert await check(f"{hub.url}/org/quiet/resolve/main/quiet.safetensors") is None  # the card names none
    assert await check(f"{civitai.url}/api/download/models/51") == {
        "name": "Civitai model licence", "url": "https://civitai.com/models/7",
        "commercial_use": ["Image", "RentCivit"], "derivatives": True, "credit_required": False}
