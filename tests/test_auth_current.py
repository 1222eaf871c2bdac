"""Every request and socket action is checked against the user's current role and the token's
revocation; failed logins slow down one user at one address only. A real app on loopback."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import warnings
from pathlib import Path

import aiohttp
import jwt
from aiohttp import web
from support import PASSWORD

from dashboard.api.context import SERVICES
from dashboard.ws import CLOSE_UNAUTHORIZED

ROOT = Path(__file__).resolve().parent.parent


async def token_of(client, username="admin", password=PASSWORD, address=None) -> str:
    response = await login(client, username, password, address)
    assert response.status == 200, await response.text()
    return (await response.json())["token"]


async def login(client, username="admin", password=PASSWORD, address=None):
    headers = {"X-Forwarded-For": address} if address else {}
    return await client.post("/api/auth/login", json={"username": username, "password": password}, headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def role_seen(client, token: str) -> str | int:
    """The role /api/auth/verify reports for a token, or the HTTP status when it is refused."""
    response = await client.get("/api/auth/verify", headers=bearer(token))
    return (await response.json())["user"]["role"] if response.status == 200 else response.status


async def closed_with(socket) -> int:
    """Read until the server closes the socket; its close code."""
    while True:
        message = await asyncio.wait_for(socket.receive(), 30)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return socket.close_code


async def answer_to(socket, message: dict) -> dict:
    """Send a message; the server's answer with the same id (acks skipped)."""
    await socket.send_json(message)
    while True:
        answer = await asyncio.wait_for(socket.receive_json(), 30)
        if answer.get("id") == message["id"] and answer["type"] != "ack":
            return answer


async def users_add(settings, username: str, role: str, password: str) -> None:
    """`comfy-dashboard users add` in its own process, on the same workspace as the running server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHBOARD_")}
    env["PYTHONPATH"] = str(ROOT)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dashboard", "users", "add", username, "--role", role, "--password-stdin",
        "--workspace", str(settings.workspace), env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(f"{password}\n".encode()), 60)
    assert process.returncode == 0, (out + err).decode()


async def test_a_demoted_administrator_is_a_viewer_at_once(secure):
    client = await secure()
    auth = client.app[SERVICES].auth
    await auth.add_user("ann", "ann-password", "administrator")
    token = await token_of(client, "ann", "ann-password")
    await auth.set_role("ann", "viewer")
    assert await role_seen(client, token) == "viewer"
    refused = await client.post("/api/presets/WAN_22_5B_TIV2/install", json={}, headers=bearer(token))
    assert refused.status == 403 and (await refused.json())["error"]["code"] == "FORBIDDEN"
    assert (await client.get("/api/presets", headers=bearer(token))).status == 200


async def test_tokens_of_a_removed_or_replaced_user_stop_working(secure):
    client = await secure()
    auth = client.app[SERVICES].auth
    await auth.add_user("ann", "ann-password", "administrator")
    removed = await token_of(client, "ann", "ann-password")
    await auth.remove_user("ann")
    assert await role_seen(client, removed) == 401
    await auth.add_user("ann", "ann-password", "administrator")  # recreated
    assert await role_seen(client, removed) == 401
    replaced = await token_of(client, "ann", "ann-password")
    await auth.add_user("ann", "new-password", "viewer")
    assert await role_seen(client, replaced) == 401
    assert await role_seen(client, await token_of(client, "ann", "new-password")) == "viewer"


async def test_a_signed_token_for_a_user_that_does_not_exist_is_refused(secure, settings):
    client = await secure()
    secret = (settings.data_dir / "secret.key").read_text()
    ghost = jwt.encode({"sub": "ghost", "role": "administrator", "jti": "g1", "exp": int(time.time()) + 600},
                       secret, algorithm="HS256")
    response = await client.get("/api/auth/verify", headers=bearer(ghost))
    assert response.status == 401 and (await response.json())["error"]["code"] == "UNAUTHORIZED"
    assert (await client.post("/api/downloads/dl_x/pause", json={}, headers=bearer(ghost))).status == 401


async def test_a_restart_keeps_the_configured_admins_sessions(secure, aiohttp_client, settings):
    from dashboard.app import create_app

    client = await secure()
    token = await token_of(client)
    await client.close()
    again = await aiohttp_client(create_app(settings.replace(enable_auth=True, admin_password=PASSWORD)))
    assert await role_seen(again, token) == "administrator"


async def test_users_the_command_line_changes_apply_to_the_running_server(secure, settings):
    client = await secure()
    auth = client.app[SERVICES].auth
    await auth.add_user("ann", "ann-password", "administrator")
    await auth.add_user("carol", "carol-password", "viewer")
    ann = await token_of(client, "ann", "ann-password")
    carol = await token_of(client, "carol", "carol-password")
    async with client.ws_connect(f"/ws?token={ann}") as socket:
        assert (await socket.receive_json())["type"] == "auth_ok"
        await users_add(settings, "ann", "viewer", "ann-password")  # the same password: a demotion
        # no request came in between: the socket's own next action notices the change
        answer = await answer_to(socket, {"type": "action", "action": "interrupt", "id": 1})
        assert answer["type"] == "error" and answer["data"]["code"] == "FORBIDDEN"
    assert await role_seen(client, ann) == "viewer"
    async with client.ws_connect(f"/ws?token={carol}") as socket:
        assert (await socket.receive_json())["type"] == "auth_ok"
        await users_add(settings, "carol", "administrator", "carols-new-password")  # replaced
        assert await role_seen(client, carol) == 401
        assert await closed_with(socket) == CLOSE_UNAUTHORIZED
    assert await role_seen(client, await token_of(client, "carol", "carols-new-password")) == "administrator"
    await users_add(settings, "dave", "viewer", "daves-password")
    assert await role_seen(client, await token_of(client, "dave", "daves-password")) == "viewer"


async def test_logging_out_closes_the_sockets_of_that_token_only(secure):
    client = await secure()
    token, other = await token_of(client), await token_of(client)
    async with client.ws_connect(f"/ws?token={token}") as socket, \
            client.ws_connect("/ws", headers=bearer(other)) as second:
        assert (await socket.receive_json())["type"] == "auth_ok"
        assert (await client.post("/api/auth/logout", headers=bearer(token))).status == 200
        assert await closed_with(socket) == CLOSE_UNAUTHORIZED
        assert (await answer_to(second, {"type": "ping", "id": "p"}))["type"] == "pong"


async def test_removing_a_user_closes_their_sockets(secure):
    client = await secure()
    auth = client.app[SERVICES].auth
    await auth.add_user("ann", "ann-password", "administrator")
    async with client.ws_connect(f"/ws?token={await token_of(client, 'ann', 'ann-password')}") as socket:
        assert (await socket.receive_json())["type"] == "auth_ok"
        await auth.remove_user("ann")
        assert await closed_with(socket) == CLOSE_UNAUTHORIZED


async def test_a_demoted_users_socket_stays_open_but_its_actions_are_forbidden(secure):
    client = await secure()
    auth = client.app[SERVICES].auth
    await auth.add_user("ann", "ann-password", "administrator")
    async with client.ws_connect(f"/ws?token={await token_of(client, 'ann', 'ann-password')}") as socket:
        assert (await socket.receive_json())["type"] == "auth_ok"
        before = await answer_to(socket, {"type": "action", "action": "interrupt", "id": 1})
        assert before["data"]["code"] == "COMFYUI_UNAVAILABLE"  # allowed; there is no ComfyUI to interrupt
        await auth.set_role("ann", "viewer")
        after = await answer_to(socket, {"type": "action", "action": "interrupt", "id": 2})
        assert after["type"] == "error" and after["data"]["code"] == "FORBIDDEN"
        assert (await answer_to(socket, {"type": "ping", "id": 3}))["type"] == "pong"


async def test_failed_logins_slow_down_only_that_user_at_that_address(secure):
    client = await secure(trusted_proxies=("127.0.0.1",))  # X-Forwarded-For names the client's address
    await client.app[SERVICES].auth.add_user("ann", "ann-password", "viewer")
    for _ in range(5):
        assert (await login(client, password="wrong", address="203.0.113.7")).status == 401
    locked = await login(client, address="203.0.113.7")
    assert locked.status == 429 and int(locked.headers["Retry-After"]) >= 1
    assert (await login(client, address="198.51.100.2")).status == 200  # the admin, from elsewhere
    assert (await login(client, "ann", "ann-password", address="203.0.113.7")).status == 200  # another user


async def test_the_request_user_is_a_typed_request_key(secure, monkeypatch):
    monkeypatch.setattr(web.BaseRequest, "_seen_str_keys", set())  # aiohttp warns once a process per key
    client = await secure()
    token = await token_of(client)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert (await client.get("/api/auth/verify", headers=bearer(token))).status == 200
        assert (await client.post("/api/auth/logout", headers=bearer(token))).status == 200
    assert not [w for w in caught if issubclass(w.category, web.NotAppKeyWarning)]
