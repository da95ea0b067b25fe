"""One handler serves every `service.action` call; one middleware turns refusals into envelopes."""
from __future__ import annotations

import logging

from aiohttp import web

from domain.errors import TaskTrailError
from gateway.call import Call, endpoints_key, settings_key
from gateway.envelope import ApiError, envelope_response
from gateway.errors import api_error_for, unknown_endpoint
from gateway.identity import IDENTITY_KEY
from gateway.request import read_body

log = logging.getLogger(__name__)


def endpoint_of(request: web.Request) -> tuple[str, str | None]:
    return request.match_info.get("endpoint", request.path.strip("/")), request.match_info.get("version")


async def api_call(request: web.Request) -> web.Response:
    name, version = endpoint_of(request)
    endpoint = request.app[endpoints_key].get(name)
    if endpoint is None:
        log.warning("unknown endpoint %s (version %s)", name, version or "latest")
        raise unknown_endpoint(name, version)
    body = await read_body(request, batch=getattr(endpoint, "accepts_batch", False))
    identity = request[IDENTITY_KEY]
    data = await endpoint(Call(request, body, identity.user))
    return envelope_response(name, version, data)


async def health(request: web.Request) -> web.Response:
    settings = request.app[settings_key]
    return envelope_response("health", None, {"status": "ok", "nats_url": settings.nats_url, "nats_namespace": settings.subjects.namespace})


@web.middleware
async def envelope_errors(request: web.Request, handler) -> web.StreamResponse:
    name, version = endpoint_of(request)
    try:
        return await handler(request)
    except ApiError as error:
        return envelope_response(name, version, None, error.code, error.subcode, error.message)
    except TaskTrailError as refusal:
        error = api_error_for(refusal)
        return envelope_response(name, version, None, error.code, error.subcode, error.message)
    except web.HTTPNotFound:
        error = unknown_endpoint(name, version)
        return envelope_response(name, version, None, error.code, error.subcode, error.message)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unexpected error serving %s", name)
        return envelope_response(name, version, None, 500, 0, "Internal server error")
