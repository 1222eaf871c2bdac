"""The auth endpoints: /api/auth/login, /logout, /verify."""

from __future__ import annotations

from aiohttp import web

from ..errors import InvalidRequest
from .context import RATE_LIMITER, USER, services
from .routing import Routes
from .schemas import BOOLEAN, INTEGER, STRING, obj
from .security.guard import COOKIE

routes = Routes("auth")

USER_ANSWER = obj(username=STRING, role={"enum": ["administrator", "viewer"]})
LOGIN_REQUEST = obj(required=["username", "password"], additional=False,
                    username={"type": "string", "minLength": 1, "maxLength": 100},
                    password={"type": "string", "minLength": 1, "maxLength": 1000}, session=BOOLEAN)
LOGIN_ANSWER = obj(token=STRING, expires_in=INTEGER, user=USER_ANSWER)
VERIFY_ANSWER = obj(valid=BOOLEAN, user=USER_ANSWER, auth_enabled=BOOLEAN)


@routes.post("/api/auth/login", summary="Log in: a bearer token (and, with session: true, a cookie)",
             body=LOGIN_REQUEST, response=LOGIN_ANSWER, public=True,
             errors=["UNAUTHORIZED", "RATE_LIMIT_EXCEEDED"],
             description="Only when ENABLE_AUTH is on. After 5 failed logins in 15 minutes for one user from "
                         "one address, that user may try again from that address only after a wait (429 with "
                         "Retry-After) of 2 s, doubling with each further failure up to 15 minutes; other "
                         "addresses and other users are not slowed.")
async def login(request: web.Request, params: dict) -> web.Response:
    auth = services(request).auth
    if auth is None:
        raise InvalidRequest("Authentication is off (ENABLE_AUTH is not set)")
    address = request.config_dict[RATE_LIMITER].client_address(request)
    answer = await auth.login(params["username"], params["password"], address)
    response = web.json_response(answer)
    if params.get("session"):
        response.set_cookie(COOKIE, answer["token"], max_age=answer["expires_in"], httponly=True, samesite="Strict",
                            secure=request.secure, path=_cookie_path(request))
    return response


@routes.post("/api/auth/logout", summary="Log out: revoke this token and clear the session cookie",
             response=obj(status={"enum": ["success"]}), any_role=True, errors=["UNAUTHORIZED"])
async def logout(request: web.Request, params: dict) -> web.Response:
    auth = services(request).auth
    if auth is not None and USER in request:
        await auth.logout(request[USER])
    response = web.json_response({"status": "success"})
    response.del_cookie(COOKIE, path=_cookie_path(request))
    return response


@routes.get("/api/auth/verify", summary="Who this token belongs to", response=VERIFY_ANSWER, errors=["UNAUTHORIZED"])
async def verify(request: web.Request, params: dict) -> web.Response:
    if services(request).auth is None:
        return web.json_response({"valid": True, "user": {"username": "anonymous", "role": "administrator"},
                                  "auth_enabled": False})
    user = request[USER]
    return web.json_response({"valid": True, "user": {"username": user["username"], "role": user["role"]},
                              "auth_enabled": True})


def _cookie_path(request: web.Request) -> str:
    """The app's own prefix ("/" standalone, "/dashboard/" inside ComfyUI)."""
    return request.path.rsplit("/api/auth/", 1)[0] + "/"
