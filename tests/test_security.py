"""Authentication, roles, sessions, CSRF, rate limits and CORS, on a real app."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import jwt
import pytest
from support import PASSWORD

from dashboard.api.context import SERVICES
from dashboard.app import create_app
from dashboard.ws import CLOSE_UNAUTHORIZED

ROOT = Path(__file__).resolve().parent.parent
COUNTED = "/api/auth/verify"  # a cheap route the rate limit counts (with auth off it answers 200)


async def login(client, username="admin", password=PASSWORD, **extra):
    response = await client.post("/api/auth/login", json={"username": username, "password": password, **extra})
    return response


async def token_of(client, **kwargs) -> str:
    response = await login(client, **kwargs)
    assert response.status == 200, await response.text()
    return (await response.json())["token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def concrete(path: str) -> str:
    return path.replace("{", "").replace("}", "")


async def test_every_route_but_health_and_login_needs_auth(secure):
    client = await secure()
    public = {("GET", "/health"), ("POST", "/api/auth/login"), ("GET", "/ws"),
              ("GET", "/"), ("GET", "/assets/{name}")}  # the page, which shows the login form
    checked = 0
    for route in client.app.router.routes():
        if route.method in ("HEAD", "OPTIONS"):
            continue
        path = route.resource.canonical
        if (route.method, path) in public:
            continue
        response = await client.request(route.method, concrete(path), json={})
        assert response.status == 401, (route.method, path, response.status)
        assert (await response.json())["error"]["code"] == "UNAUTHORIZED"
        checked += 1
    assert checked > 20
    assert (await client.get("/health")).status == 200


async def test_login_verify_logout_and_revocation_survives_restart(secure, aiohttp_client, settings):
    client = await secure()
    response = await login(client)
    body = await response.json()
    assert body["expires_in"] == 3600 and body["user"] == {"username": "admin", "role": "administrator"}
    token = body["token"]
    verify = await (await client.get("/api/auth/verify", headers=bearer(token))).json()
    assert verify == {"valid": True, "user": {"username": "admin", "role": "administrator"}, "auth_enabled": True}
    assert (await client.get("/api/presets", headers=bearer(token))).status == 200
    assert (await client.post("/api/auth/logout", headers=bearer(token))).status == 200
    assert (await client.get("/api/auth/verify", headers=bearer(token))).status == 401
    await client.close()
    again = await aiohttp_client(create_app(settings.replace(enable_auth=True, admin_password=PASSWORD)))
    assert (await again.get("/api/auth/verify", headers=bearer(token))).status == 401
    assert (await again.get("/api/auth/verify", headers=bearer(await token_of(again)))).status == 200


async def test_wrong_tampered_and_expired_tokens_are_401(secure, settings):
    client = await secure()
    assert (await login(client, password="wrong")).status == 401
    assert (await login(client, username="nobody")).status == 401
    token = await token_of(client)
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    assert (await client.get("/api/auth/verify", headers=bearer(tampered))).status == 401
    secret = (settings.data_dir / "secret.key").read_text()
    expired = jwt.encode({"sub": "admin", "role": "administrator", "jti": "x", "exp": int(time.time()) - 10},
                         secret, algorithm="HS256")
    response = await client.get("/api/auth/verify", headers=bearer(expired))
    assert response.status == 401 and "expired" in (await response.json())["error"]["message"]
    forged = jwt.encode({"sub": "admin", "role": "administrator", "jti": "y", "exp": int(time.time()) + 99},
                        "not-the-secret-but-long-enough-to-be-a-key!", algorithm="HS256")
    assert (await client.get("/api/auth/verify", headers=bearer(forged))).status == 401


async def test_secret_is_generated_once_with_private_permissions(secure, settings):
    await secure()
    mode = stat.S_IMODE(os.stat(settings.data_dir / "secret.key").st_mode)
    assert mode == 0o600


async def test_viewers_read_but_cannot_change_anything(secure):
    client = await secure()
    await client.app[SERVICES].auth.add_user("viewer", "viewer-password", "viewer")
    token = await token_of(client, username="viewer", password="viewer-password")
    assert (await client.get("/api/presets", headers=bearer(token))).status == 200
    response = await client.post("/api/presets/WAN_22_5B_TIV2/install", json={}, headers=bearer(token))
    assert response.status == 403 and (await response.json())["error"]["code"] == "FORBIDDEN"
    assert (await client.post("/api/auth/logout", headers=bearer(token))).status == 200
    async with client.ws_connect(f"/ws?token={await token_of(client, username='viewer', password='viewer-password')}"
                                 ) as socket:
        await socket.receive_json()  # auth_ok
        await socket.send_json({"type": "action", "action": "interrupt", "id": 1})
        assert (await socket.receive_json())["data"]["code"] == "FORBIDDEN"


async def test_session_cookie_is_httponly_and_state_changes_need_same_origin_json(secure):
    client = await secure()
    response = await login(client, session=True)
    cookie = response.cookies["dashboard_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert (await client.get("/api/auth/verify")).status == 200  # the cookie jar carries the session
    origin = str(client.make_url("")).rstrip("/")
    no_origin = await client.post("/api/downloads/dl_x/pause")
    assert no_origin.status == 403
    not_json = await client.post("/api/downloads/dl_x/pause", data="x", headers={"Origin": origin})
    assert not_json.status == 403
    same = await client.post("/api/downloads/dl_x/pause", json={}, headers={"Origin": origin})
    assert same.status == 404  # passed the guard, reached the handler
    foreign = await client.post("/api/downloads/dl_x/pause", json={}, headers={"Origin": "http://evil.example"})
    assert foreign.status == 403


async def test_repeated_failed_logins_are_locked_out(secure):
    client = await secure()
    for _ in range(5):
        assert (await login(client, password="nope")).status == 401
    locked = await login(client)
    assert locked.status == 429 and int(locked.headers["Retry-After"]) >= 1
    assert (await locked.json())["error"]["code"] == "RATE_LIMIT_EXCEEDED"


async def test_secrets_never_reach_logs_or_errors(secure, caplog):
    caplog.set_level(logging.DEBUG)
    client = await secure()
    token = await token_of(client)
    response = await login(client, password="my-wrong-secret-password")
    text = await response.text()
    assert "my-wrong-secret-password" not in text
    await client.get("/api/auth/verify", headers=bearer(token + "x"))
    assert PASSWORD not in caplog.text and "my-wrong-secret-password" not in caplog.text and token not in caplog.text


async def test_websocket_auth_by_query_message_or_close_4401(secure, monkeypatch):
    from dashboard.ws import connection as ws_module

    monkeypatch.setattr(ws_module, "AUTH_TIMEOUT", 0.3)
    client = await secure()
    token = await token_of(client)
    async with client.ws_connect(f"/ws?token={token}") as socket:
        assert (await socket.receive_json())["type"] == "auth_ok"
    async with client.ws_connect("/ws") as socket:
        await socket.send_json({"type": "auth", "token": token})
        assert (await socket.receive_json())["type"] == "auth_ok"
        await socket.send_json({"type": "ping"})
        assert (await socket.receive_json())["type"] == "pong"
    async with client.ws_connect("/ws") as socket:
        message = await socket.receive()
        assert message.type == aiohttp.WSMsgType.CLOSE and socket.close_code == CLOSE_UNAUTHORIZED
    async with client.ws_connect("/ws?token=garbage") as socket:
        await socket.receive()
        assert socket.close_code == CLOSE_UNAUTHORIZED


async def test_open_dashboard_on_a_public_address_warns(make_client, caplog):
    await make_client(host="0.0.0.0")
    assert "Authentication is off" in caplog.text


def test_users_add_command(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHBOARD_")}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, "-m", "dashboard", "users", "add", "bob", "--role", "viewer",
                             "--password-stdin", "--workspace", str(tmp_path)], input="bobs-password\n",
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "bob" in result.stdout and "bobs-password" not in result.stdout + result.stderr


async def test_rate_limit_headers_and_429(make_client):
    client = await make_client(rate_limit=3)
    for remaining in (2, 1, 0):
        response = await client.get(COUNTED)
        assert response.headers["X-RateLimit-Limit"] == "3"
        assert response.headers["X-RateLimit-Remaining"] == str(remaining)
        assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time())
    limited = await client.get("/api/presets")
    assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["X-RateLimit-Limit"] == "3" and limited.headers["X-RateLimit-Remaining"] == "0"
    assert (await limited.json())["error"]["code"] == "RATE_LIMIT_EXCEEDED"


async def test_tokens_get_their_own_bigger_budget(secure):
    client = await secure(rate_limit=2, rate_limit_authenticated=5)
    token = await token_of(client)
    for _ in range(4):
        response = await client.get("/api/auth/verify", headers=bearer(token))
        assert response.status == 200 and response.headers["X-RateLimit-Limit"] == "5"


async def test_forwarded_for_only_from_trusted_proxies(make_client):
    untrusted = await make_client(rate_limit=1)
    assert (await untrusted.get(COUNTED, headers={"X-Forwarded-For": "10.0.0.1"})).status == 200
    assert (await untrusted.get(COUNTED, headers={"X-Forwarded-For": "10.0.0.2"})).status == 429
    trusted = await make_client(rate_limit=1, trusted_proxies=("127.0.0.1",))
    assert (await trusted.get(COUNTED, headers={"X-Forwarded-For": "10.0.0.1"})).status == 200
    assert (await trusted.get(COUNTED, headers={"X-Forwarded-For": "10.0.0.2"})).status == 200
    assert (await trusted.get(COUNTED, headers={"X-Forwarded-For": "10.0.0.2"})).status == 429


async def test_rate_limit_zero_turns_it_off(make_client):
    client = await make_client(rate_limit=0)
    for path in ("/health", COUNTED, "/"):
        response = await client.get(path)
        assert response.status == 200 and "X-RateLimit-Limit" not in response.headers


async def test_health_is_never_rate_limited(make_client):
    client = await make_client(rate_limit=2)
    for _ in range(5):
        health = await client.get("/health")
        assert health.status == 200 and health.headers["X-RateLimit-Remaining"] == "2"  # not counted
    for _ in range(3):
        await client.get(COUNTED)
    assert (await client.get(COUNTED)).status == 429
    health = await client.get("/health")  # a load balancer's probe passes while the API budget is spent
    assert health.status == 200 and (await health.json())["status"] == "healthy"
    assert health.headers["X-RateLimit-Limit"] == "2" and health.headers["X-RateLimit-Remaining"] == "0"


async def test_every_response_carries_the_rate_limit_headers(make_client):
    client = await make_client(rate_limit=50, cors_origins=("http://ok.example",))
    preflight = {"Origin": "http://ok.example", "Access-Control-Request-Method": "POST"}
    answers = {
        "page": await client.get("/"),
        "asset": await client.get("/assets/app.js"),
        "unknown route": await client.get("/api/no/such/thing"),
        "unsupported version": await client.get(COUNTED, headers={"X-API-Version": "9.0"}),
        "preflight": await client.options("/api/downloads/dl_x/pause", headers=preflight),
        "refused preflight": await client.options("/health", headers={**preflight, "Origin": "http://evil.example"}),
        "wrong method": await client.delete("/health"),
    }
    assert [answer.status for answer in answers.values()] == [200, 200, 404, 400, 204, 403, 405]
    for what, answer in answers.items():
        assert answer.headers.get("X-RateLimit-Limit") == "50", what
        assert 0 <= int(answer.headers["X-RateLimit-Remaining"]) <= 50, what
        assert int(answer.headers["X-RateLimit-Reset"]) >= int(time.time()), what


async def test_websocket_messages_are_not_counted(make_client):
    client = await make_client(rate_limit=3)
    async with client.ws_connect("/ws") as socket:  # the handshake counts once
        for n in range(10):
            await socket.send_json({"type": "ping", "id": n})
            assert await socket.receive_json() == {"type": "pong", "id": n}
    response = await client.get(COUNTED)
    assert response.status == 200 and response.headers["X-RateLimit-Remaining"] == "1"


async def test_without_cors_origins_foreign_pages_cannot_change_state(client):
    foreign = {"Origin": "http://evil.example"}
    response = await client.post("/api/presets/WAN_22_5B_TIV2/install", json={}, headers=foreign)
    assert response.status == 403
    read = await client.get("/health", headers=foreign)
    assert read.status == 200 and "Access-Control-Allow-Origin" not in read.headers


async def test_cors_preflight_and_headers_for_allowed_origins(make_client):
    client = await make_client(cors_origins=("http://ok.example",))
    preflight = await client.options("/api/downloads/dl_x/pause", headers={
        "Origin": "http://ok.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://ok.example"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]
    response = await client.post("/api/downloads/dl_x/pause", headers={"Origin": "http://ok.example"})
    assert response.status == 404 and response.headers["Access-Control-Allow-Origin"] == "http://ok.example"
    assert "X-RateLimit-Remaining" in response.headers["Access-Control-Expose-Headers"]
    refused = await client.options("/health", headers={"Origin": "http://evil.example",
                                                       "Access-Control-Request-Method": "GET"})
    assert refused.status == 403


async def test_cors_wildcard(make_client):
    client = await make_client(cors_origins=("*",))
    response = await client.get("/health", headers={"Origin": "http://any.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"


async def test_the_page_behind_an_https_proxy_may_change_state(client):
    host = client.make_url("").host + ":" + str(client.make_url("").port)
    response = await client.post("/api/downloads/dl_x/pause", headers={"Origin": f"https://{host}"})
    assert response.status == 404  # the guard let it through; no such download


async def test_a_failed_start_stops_what_it_started(settings, monkeypatch):
    import sqlite3

    from dashboard.comfy.backend import UnavailableBackend
    from dashboard.services.container import Services
    from dashboard.store import Store

    async def cannot_open(self):
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(Store, "open", cannot_open)  # e.g. a data folder on a read-only volume
    services = Services(settings, UnavailableBackend())
    with pytest.raises(sqlite3.OperationalError):
        await services.start()
    assert services.system._task is None and services.started is False
