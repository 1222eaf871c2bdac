"""Hostile input on every JSON route and on /ws: a 400 (or an `error` message), never a server fault."""

from __future__ import annotations

import re

from support import PASSWORD, logged_faults

from dashboard.api.routing import MAX_JSON_DEPTH

DEEP = "[" * 5000 + "]" * 5000


def body_operations(document: dict) -> list[tuple[str, str]]:
    """(method, path) of every operation of the OpenAPI document that takes a JSON body."""
    return [(method.upper(), path) for path, item in document["paths"].items()
            for method, operation in item.items() if "application/json" in operation.get("requestBody", {}).get(
                "content", {})]


async def test_deeply_nested_bodies_are_invalid_request_on_every_route(make_client, caplog):
    client = await make_client(enable_auth=True, admin_password=PASSWORD)
    answer = await client.post("/api/auth/login", data=DEEP, headers={"Content-Type": "application/json"})
    assert answer.status == 400 and (await answer.json())["error"]["code"] == "INVALID_REQUEST"
    login = await client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
    token = (await login.json())["token"]
    document = await (await client.get("/api/openapi.json", headers={"Authorization": f"Bearer {token}"})).json()
    operations = body_operations(document)
    assert ("POST", "/api/auth/login") in operations and len(operations) > 5
    for method, path in operations:
        url = re.sub(r"{\w+}", "x", path)
        response = await client.request(method, url, data=DEEP, headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        assert response.status == 400, (method, path, await response.text())
        error = (await response.json())["error"]
        assert error["code"] == "INVALID_REQUEST" and "nested" in error["message"], (method, path, error)
    assert logged_faults(caplog) == [] and "Traceback" not in caplog.text


async def test_nesting_up_to_the_limit_is_still_read(client):
    ok = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    response = await client.post("/api/workflows", data=ok, headers={"Content-Type": "application/json"})
    error = (await response.json())["error"]
    assert response.status == 400 and "nested" not in error["message"]  # read, then refused as not an object
    text = '{"name": "' + "[" * 5000 + '"}'  # brackets inside a string are not nesting
    response = await client.post("/api/workflows", data=text, headers={"Content-Type": "application/json"})
    assert "nested" not in (await response.json())["error"]["message"]


async def test_a_deep_websocket_frame_gets_an_error_and_the_socket_lives_on(client, caplog):
    async with client.ws_connect("/ws") as socket:
        await socket.send_str('{"type": "ping", "id": 1, "pad": ' + DEEP + "}")
        error = await socket.receive_json()
        assert error["type"] == "error" and error["data"]["code"] == "INVALID_REQUEST"
        assert "nested" in error["data"]["message"]
        await socket.send_json({"type": "ping", "id": 2})
        assert await socket.receive_json() == {"type": "pong", "id": 2}
    assert logged_faults(caplog) == [] and "Traceback" not in caplog.text
