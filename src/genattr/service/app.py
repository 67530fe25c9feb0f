"""The FastAPI app: attribution of uploaded images, the model registry (reads open, writes behind bearer tokens),
the verdict schema, a health check, and the web page at ``/``.

Blocking work (decoding, attribution, database calls) runs in worker threads so the event loop keeps accepting
and streaming other requests; attributions themselves are limited to ``settings.workers`` at a time.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, field_validator

from genattr.errors import ConfigError, UnknownNameError
from genattr.service.errors import ApiError, error_responses, install_handlers, log
from genattr.service.images import decode_batch
from genattr.service.settings import ServiceSettings
from genattr.service.state import ServiceState
from genattr.service.uploads import FIELD, read_uploads

STATIC = Path(__file__).with_name("static")
MODEL_KINDS = ("zoo", "keyed-user", "fingerprint-instance", "external")
# The page loads nothing from elsewhere; reconstructions arrive as data: URLs, previews as blob: URLs.
PAGE_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ModelIn(BaseModel):
    """A model to register. Weights stay wherever they are: the registry records the sha256 of the weights file
    (its id). Server-side paths are not accepted over HTTP; use `genattr registry add` on the server for those."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", examples=["my-gan-v1"])
    kind: Literal["zoo", "keyed-user", "fingerprint-instance", "external"]
    architecture: str = Field(min_length=1, max_length=64, examples=["dcgan"])
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 (hex) of the weights file: the model id")
    owner: str | None = Field(default=None, max_length=256)
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("architecture", "owner")
    @classmethod
    def _printable(cls, v: str | None) -> str | None:
        if v is not None and _CONTROL.search(v):
            raise ValueError("must not contain control characters")
        return v

    @field_validator("meta")
    @classmethod
    def _meta_text(cls, v: dict[str, Any]) -> dict[str, Any]:
        import json

        text = json.dumps(v, allow_nan=False)  # NaN/inf are not JSON; databases refuse them
        if "\\u0000" in text or len(text) > 65536:
            raise ValueError("must be JSON without NUL characters, at most 64 KiB")
        return v


class ModelOut(BaseModel):
    id: str
    name: str
    kind: str
    architecture: str
    owner: str | None
    created: str
    path: str | None
    meta: dict[str, Any]


class ModelList(BaseModel):
    models: list[ModelOut]


class Health(BaseModel):
    status: str
    registry: str
    pipeline: str
    image_shape: list[int] | None = Field(default=None, description="(C, H, W) the models expect, once loaded")
    version: str


_ATTRIBUTE_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": [FIELD],
    "properties": {FIELD: {"type": "array", "items": {"type": "string", "format": "binary"},
                           "description": "one or more PNG/JPEG/WebP images (repeat the field)"}}}}}}}
_ATTRIBUTE_OK = {200: {"description": "one verdict per image, in upload order (schema: GET /v1/schema, "
                                      "$defs.results)",
                       "content": {"application/json": {"schema": {
                           "type": "object", "required": ["schema", "results"],
                           "properties": {"schema": {"type": "string"},
                                          "results": {"type": "array", "items": {"type": "object"}}}}}}}}


def create_app(settings: ServiceSettings | None = None, *, pipeline: Any = None, registry: Any = None) -> FastAPI:
    """The service app. ``pipeline``/``registry``: ready objects to serve instead of opening the registry at
    ``settings.database_url`` and building :class:`genattr.unified.Pipeline` from it (tests, embedding)."""
    from genattr import __version__

    settings = settings or ServiceSettings()
    state = ServiceState(settings, pipeline=pipeline, registry=registry)
    limiter: dict[str, anyio.CapacityLimiter] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limiter["attribute"] = anyio.CapacityLimiter(settings.workers)
        if settings.load_on_startup and pipeline is None:
            try:
                await run_in_threadpool(state.pipeline)
            except Exception as exc:  # the server still starts; requests retry and answer 503 until it works
                log.warning("pipeline not built at startup (will retry on the first request): %s", exc)
        yield
        state.close()

    app = FastAPI(title="genattr", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Who made this image? Attribution of generated images to registered models. "
                              "Errors are `{\"error\": {\"code\", \"message\"}}`; see docs/service.md.")
    app.state.genattr = state
    install_handlers(app)
    bearer = HTTPBearer(auto_error=False, description="an API token (`genattr registry token create LABEL`)")

    # a plain default, not Annotated[…]: string annotations cannot see the local `bearer`
    def require_token(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        challenge = {"WWW-Authenticate": "Bearer"}
        if creds is None:
            raise ApiError(401, "missing_token", "registry writes need `Authorization: Bearer <token>`",
                           headers=challenge)
        if not state.registry().verify_token(creds.credentials):
            raise ApiError(401, "bad_token", "the bearer token is unknown or revoked", headers=challenge)

    @app.post("/v1/attribute", tags=["attribution"], openapi_extra=_ATTRIBUTE_BODY,
              responses={**_ATTRIBUTE_OK, **error_responses(400, 413, 415, 422, 503)})
    async def attribute(request: Request, deep: Annotated[bool, Query(
            description="also run seed reconstruction on the shortlist (slow: seconds per image)")] = False
    ) -> dict[str, Any]:
        """Attribute one or more images (multipart field `files`); one verdict per image, in upload order."""
        uploads = await read_uploads(request, max_body_bytes=settings.max_body_bytes, max_files=settings.max_files)
        if deep and len(uploads) > settings.max_deep_files:
            raise ApiError(413, "too_many_files", f"deep=true takes at most {settings.max_deep_files} images per "
                                                  f"request (got {len(uploads)}); reconstruction is slow")
        pipe = await run_in_threadpool(state.pipeline)
        shape = tuple(int(s) for s in pipe.image_shape)
        arrays = await run_in_threadpool(partial(decode_batch, uploads, shape, max_pixels=settings.max_pixels,
                                                 formats=settings.formats))
        if "attribute" not in limiter:  # the ASGI server skipped the lifespan (some test clients do)
            limiter["attribute"] = anyio.CapacityLimiter(settings.workers)
        verdicts = await anyio.to_thread.run_sync(
            partial(_run_pipeline, pipe, arrays, [u.data for u in uploads], deep), limiter=limiter["attribute"])
        if len(verdicts) != len(uploads):
            raise RuntimeError(f"pipeline returned {len(verdicts)} verdicts for {len(uploads)} images")
        from genattr.unified import SCHEMA_VERSION

        return {"schema": SCHEMA_VERSION,
                "results": [{**v.to_json(), "filename": u.filename} for v, u in zip(verdicts, uploads, strict=True)]}

    @app.get("/v1/models", tags=["registry"], response_model=ModelList, responses=error_responses(422, 503))
    def list_models(kind: Annotated[Literal["zoo", "keyed-user", "fingerprint-instance", "external"] | None,
                                    Query(description="only models of this kind")] = None) -> dict[str, Any]:
        """The registered models (no token needed)."""
        return {"models": [m.to_json() for m in state.registry().list_models(kind)]}

    @app.get("/v1/models/{model_id}", tags=["registry"], response_model=ModelOut,
             responses=error_responses(404, 503))
    def get_model(model_id: str) -> dict[str, Any]:
        """One model by id (sha256 of its weights) or name."""
        return _lookup(state, model_id).to_json()

    @app.post("/v1/models", tags=["registry"], status_code=201, response_model=ModelOut,
              dependencies=[Depends(require_token)], responses=error_responses(401, 409, 422, 503))
    def add_model(model: ModelIn) -> dict[str, Any]:
        """Register a model (bearer token required)."""
        reg = state.registry()
        for key in (model.name, model.sha256):
            if _exists(reg.get_model, key) or _exists(reg.get_component, key):
                raise ApiError(409, "already_registered", f"the name or id {key[:16]!r} is already registered "
                                                          "(as a model or a component)")
        rec = reg.add_model(name=model.name, kind=model.kind, architecture=model.architecture, sha256=model.sha256,
                            owner=model.owner, meta=model.meta)
        state.registry_changed()
        log.info("model registered: %s (%s)", rec.name, rec.id[:12])
        return rec.to_json()

    @app.delete("/v1/models/{model_id}", tags=["registry"], status_code=204, response_class=Response,
                dependencies=[Depends(require_token)], responses=error_responses(401, 404, 409, 503))
    def remove_model(model_id: str) -> Response:
        """Remove a model by id or name (bearer token required); refused while a component covers it."""
        rec = _lookup(state, model_id)
        users = state.registry().model_components(rec.id)
        if users:
            raise ApiError(409, "model_in_use", f"model {rec.name} is covered by the component(s) {', '.join(users)}; "
                                                "remove those first (genattr registry remove)")
        state.registry().remove_model(rec.id)
        state.registry_changed()
        log.info("model removed: %s (%s)", rec.name, rec.id[:12])
        return Response(status_code=204)

    @app.get("/v1/schema", tags=["attribution"])
    def schema() -> dict[str, Any]:
        """JSON Schema of one verdict (`$defs.results`: the answer of POST /v1/attribute)."""
        from genattr.unified import verdict_json_schema

        return verdict_json_schema()

    @app.get("/healthz", tags=["service"], response_model=Health, responses=error_responses(503))
    def healthz() -> dict[str, Any]:
        """Liveness and readiness: 200 when the registry answers, 503 when it does not."""
        state.registry().list_models()
        return {"status": "ok", "registry": "ok", "pipeline": "loaded" if state.pipeline_loaded else "not loaded",
                "image_shape": state.image_shape(), "version": __version__}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_CSP,
                                                             "X-Content-Type-Options": "nosniff"})

    # Swagger UI from the swagger-ui-bundle wheel, not FastAPI's default CDN: the docs work offline
    from fastapi.openapi.docs import get_swagger_ui_html
    from swagger_ui_bundle import swagger_ui_path

    @app.get("/docs", include_in_schema=False)
    def swagger_docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title="genattr API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")

    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _run_pipeline(pipe: Any, arrays: Any, data: list[bytes], deep: bool) -> list[Any]:
    from genattr.data import to_model

    return list(pipe.attribute(to_model(arrays), deep=deep, image_bytes=data))


def _exists(get: Any, key: str) -> bool:
    try:
        get(key)
    except UnknownNameError:
        return False
    return True


def _lookup(state: ServiceState, model_id: str) -> Any:
    try:
        return state.registry().get_model(model_id)
    except (UnknownNameError, ConfigError):  # a string that cannot be a name is not a registered one either
        raise ApiError(404, "unknown_model", f"no registered model with the id or name {model_id[:80]!r} "
                                             "(GET /v1/models lists them)") from None


__all__ = ["MODEL_KINDS", "ModelIn", "create_app"]
