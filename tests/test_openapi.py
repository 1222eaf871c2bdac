"""The OpenAPI document is valid and lists exactly the routes the router serves."""

from __future__ import annotations

from openapi_spec_validator import validate
from support import MODULE_LOOP

from dashboard.api.routing import Operation


def _router_routes(app) -> set[tuple[str, str]]:
    routes = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS"):
            continue
        info = route.resource.get_info()
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        routes.add((route.method, Operation(route.method, path, None, "", "").openapi_path))
    return routes


@MODULE_LOOP
async def test_document_is_valid_openapi_31(module_client):
    response = await module_client.get("/api/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.1")
    validate(document)


@MODULE_LOOP
async def test_document_and_router_list_the_same_routes(module_client):
    document = await (await module_client.get("/api/openapi.json")).json()
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert documented == _router_routes(module_client.app)
    assert ("GET", "/api/system/status") in documented


@MODULE_LOOP
async def test_every_operation_documents_its_errors_with_the_error_schema(module_client):
    document = await (await module_client.get("/api/openapi.json")).json()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation["summary"], (method, path)
            assert "400" in operation["responses"], (method, path)
            error = operation["responses"]["400"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/Error"}
