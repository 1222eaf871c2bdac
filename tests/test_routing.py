"""Input validation that every route table gives its handlers: bad input is a 400 in the one error shape."""

from __future__ import annotations

import pytest
from aiohttp import web

from dashboard.api.errors import error_middleware
from dashboard.api.routing import Routes

routes = Routes("test")


@routes.post("/things/{name}", summary="echo", query={"dry_run": {"type": "boolean"}, "limit": {
    "type": "integer", "minimum": 1, "maximum": 10}},
    body={"type": "object", "properties": {"count": {"type": "integer", "minimum": 0, "maximum": 5},
                                           "tags": {"type": "array", "items": {"type": "string"}}},
          "required": ["count"], "additionalProperties": False})
async def echo(request, params):
    return web.json_response(params)


@pytest.fixture
async def client(aiohttp_client):
    app = web.Application(middlewares=[error_middleware])
    routes.register(app)
    return await aiohttp_client(app)


async def test_valid_input_reaches_the_handler_typed(client):
    response = await client.post("/things/a?dry_run=true&limit=3", json={"count": 2, "tags": ["x"]})
    assert response.status == 200
    assert await response.json() == {"name": "a", "dry_run": True, "limit": 3, "count": 2, "tags": ["x"]}


@pytest.mark.parametrize(("query", "body", "field"), [
    ("?dry_run=maybe", {"count": 1}, "dry_run"),
    ("?limit=ten", {"count": 1}, "limit"),
    ("?limit=11", {"count": 1}, "limit"),
    ("", {"count": "2"}, "count"),
    ("", {"count": 6}, "count"),
    ("", {"count": -1}, "count"),
    ("", {"count": 1, "tags": [1]}, "tags.0"),
    ("", {"count": 1, "surprise": True}, None),
    ("", {}, "count"),
    ("", [1, 2], None),
])
async def test_bad_input_is_invalid_request(client, query, body, field):
    response = await client.post(f"/things/a{query}", json=body)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == "INVALID_REQUEST"
    if field is not None:
        assert error["details"]["field"] == field


@pytest.mark.parametrize("raw", [b"{", b"not json", b"\xff\xfe", b'{"count": 1,}'])
async def test_malformed_json_is_invalid_request(client, raw):
    response = await client.post("/things/a", data=raw, headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "INVALID_REQUEST"
