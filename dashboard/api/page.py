"""The dashboard page: GET / (the HTML) and GET /assets/{name} (its scripts, styles and icon).

Every URL in the page is relative to the page itself, so the same files work at `/` (standalone,
separate port) and at `/dashboard/` inside ComfyUI, also when ComfyUI runs under a sub-path.
Both routes are public (the page shows a login form when auth is on) and not counted by the rate
limit (their answers still carry its headers).
"""

from __future__ import annotations

from aiohttp import web

from ..errors import NotFound
from ..services.page import CONTENT_TYPES, PageFile
from .context import services
from .routing import Routes

routes = Routes("page")

#: Where the page finds ComfyUI's `/view` (output images), written into the page's <html> tag.
_VIEW_MARKER = b'data-comfyui-view=""'
#: The page loads nothing from elsewhere: scripts, styles, images and the socket are all its own origin's.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'")
_STRING = {"type": "string"}


@routes.get("/", summary="The dashboard page", content_type="text/html", response=_STRING, public=True,
            rate_limited=False, errors=["NOT_FOUND"],
            description="A single page (plain ES modules, no build step) that lives on /ws. Inside ComfyUI it "
                        "is at /dashboard/.")
async def dashboard_page(request: web.Request, params: dict) -> web.StreamResponse:
    page = await services(request).page.index()
    if page is None:
        raise NotFound("The dashboard page is not installed (web/page/index.html is missing)")
    if _inside_comfyui(request):  # ComfyUI's own /view is one level up from /dashboard/
        page = PageFile(page.body.replace(_VIEW_MARKER, b'data-comfyui-view="../view"', 1), page.content_type,
                        page.etag[:-1] + '-c"')
    elif services(request).backend.kind != "none":  # a port of our own: through GET /api/comfyui/view
        page = PageFile(page.body.replace(_VIEW_MARKER, b'data-comfyui-view="api/comfyui/view"', 1),
                        page.content_type, page.etag[:-1] + '-r"')
    return _send(request, page, {"Content-Security-Policy": CSP})


@routes.get("/assets/{name}", summary="A file of the dashboard page", content_type=tuple(sorted(
            set(CONTENT_TYPES.values()) - {CONTENT_TYPES[".html"]})), response=_STRING, public=True,
            rate_limited=False, errors=["NOT_FOUND"],
            description="Only the page's own files, by plain name (e.g. `app.js`); anything else is 404.")
async def page_asset(request: web.Request, params: dict) -> web.StreamResponse:
    asset = await services(request).page.asset(params["name"])
    if asset is None:
        raise NotFound("No such file", {"name": params["name"][:200]})
    return _send(request, asset, {})


def _inside_comfyui(request: web.Request) -> bool:
    """Served by ComfyUI's own server (the sub-app at /dashboard), not by a port of our own."""
    return services(request).backend.kind == "in_process" and len(request.match_info.apps) > 1


def _send(request: web.Request, page: PageFile, headers: dict[str, str]) -> web.Response:
    headers = {**headers, "ETag": page.etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if page.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=page.body, headers={**headers, "Content-Type": page.content_type})
