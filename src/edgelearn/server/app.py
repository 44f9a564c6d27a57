"""The playground's web server: the pages, the TF.js files, and the API they talk to.

``create_app`` builds the FastAPI application (tests use it with ``TestClient``);
``edgelearn serve`` runs it with uvicorn. The API's OpenAPI schema is at ``/openapi.json``
(FastAPI's ``/docs`` page is off: it loads Swagger UI from a CDN, and the playground works
offline).

Example:
    >>> import tempfile
    >>> from fastapi.testclient import TestClient
    >>> client = TestClient(create_app(tempfile.mkdtemp()))
    >>> client.get("/api/models").json()
    {'models': []}
    >>> client.get("/api/models/..%2Fetc").status_code
    404
"""

from __future__ import annotations

import json
import os
import pathlib
import time
from collections.abc import AsyncGenerator
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import edgelearn
from edgelearn.home import cache_dir
from edgelearn.server import data as data_module
from edgelearn.server.store import (
    MODEL_FILE,
    NAME_PATTERN,
    UPLOAD_JSON_PART,
    UPLOAD_WEIGHTS_PART,
    ModelStore,
    ShapeMismatch,
    StoreError,
    manifest_files,
    upload_limit_text,
)
from edgelearn.server.vendor import WEB_DIR, vendor_file

DEFAULT_MAX_UPLOAD_BYTES = 100 * 2**20
TFJS_VERSION = "4.22.0"
ModelName = Annotated[str, Path(pattern=f"^{NAME_PATTERN.pattern}$", description="model name")]
BaseName = Annotated[
    str, Path(pattern=f"^({'|'.join(data_module.BASE_NAMES)})$", description="feature extractor")
]
_NO_CACHE = {"Cache-Control": "no-cache"}


# --------------------------------------------------------------------------- schemas
class TensorSpec(BaseModel):
    name: str
    shape: list[int | None] = Field(description="batch shape; null: any size")


class ModelInfo(BaseModel):
    name: str
    size: int = Field(description="bytes on disk: model.json and its weight files")
    created: str = Field(description="when model.json was last written, ISO 8601 UTC")
    params: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


class ModelList(BaseModel):
    models: list[ModelInfo]


class BaseInfo(BaseModel):
    name: str
    input_shape: list[int | None]
    output_shape: list[int | None]
    cached: bool = Field(description="already built and saved (the first request builds it)")
    url: str


class BaseList(BaseModel):
    bases: list[BaseInfo]


class ServerInfo(BaseModel):
    edgelearn: str
    tfjs: str
    allow_overwrite: bool
    max_upload_bytes: int
    mnist_format: str


class PredictRequest(BaseModel):
    inputs: Any = Field(
        description="nested lists, batch first, e.g. [[...784 numbers...]]; for a model with "
        "several inputs an object {input_name: nested lists}",
        examples=[[[0.0, 0.5, 1.0]]],
    )


class PredictResponse(BaseModel):
    outputs: Any = Field(description="nested lists (an object by output name for several)")
    shape: list[int] | dict[str, list[int]]
    seconds: float = Field(description="time spent in model.predict on the server")


class Error(BaseModel):
    detail: str | list[dict[str, Any]] = Field(
        description="what went wrong; a list for FastAPI's request validation errors (422)"
    )


class ShapeError(BaseModel):
    """The input does not fit the model (``null`` in ``expected_shape``: any size)."""

    message: str
    input: str
    expected_shape: list[int | None]
    received_shape: list[int]


class PredictError(BaseModel):
    detail: str | ShapeError | list[dict[str, Any]]


# What tf.io.http sends (tfjs-core src/io/http.ts): FastAPI cannot infer it, since the route reads
# the multipart body itself (to cap its size as it streams in).
_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [UPLOAD_JSON_PART],
                "properties": {
                    UPLOAD_JSON_PART: {
                        "type": "string",
                        "format": "binary",
                        "description": "JSON: modelTopology + weightsManifest (+ format, "
                        "generatedBy, userDefinedMetadata, ...)",
                    },
                    UPLOAD_WEIGHTS_PART: {
                        "type": "string",
                        "format": "binary",
                        "description": "the weights' bytes, in manifest order",
                    },
                },
            }
        }
    },
}


def _errors(*codes: int, model: type[BaseModel] = Error) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": model} for code in codes}


# --------------------------------------------------------------------------- body size limit
class BodyLimit:
    """ASGI middleware: 413 for any request body over ``limit`` bytes.

    A declared Content-Length is refused before anything is read; a body without one (chunked)
    is counted as it arrives and cut off at the limit, so no route ever buffers more.
    """

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    def _too_large(self) -> HTTPException:
        return HTTPException(413, f"request body over the limit of {upload_limit_text(self.limit)}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            response = JSONResponse({"detail": self._too_large().detail}, status_code=413)
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise self._too_large()  # FastAPI re-raises HTTPExceptions from body reading
            return message

        await self.app(scope, counted, send)


# --------------------------------------------------------------------------- the app
def create_app(
    models_dir: str | os.PathLike[str],
    allow_overwrite: bool = False,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    base_cache: str | os.PathLike[str] | None = None,
    mnist_source: str = "auto",
) -> FastAPI:
    """The playground application.

    Args:
        models_dir: the folder of TF.js layers models that the pages list, load and save into.
        allow_overwrite: let an upload replace an existing model when it asks (``?overwrite=true``).
        max_upload_bytes: the largest request body accepted (413 above it).
        base_cache: where the MobileNetV2 feature extractors are saved on first use (default
            ``cache_dir("models", "playground")``, under ``$EDGELEARN_HOME``).
        mnist_source: passed to ``el.datasets.mnist.load_data`` (``"local"`` never downloads).
    """
    store = ModelStore(models_dir, allow_overwrite=allow_overwrite)
    store.remove_staging_leftovers()
    bases = data_module.BaseModels(
        pathlib.Path(base_cache) if base_cache is not None else cache_dir("models", "playground")
    )
    mnist = data_module.MnistSource(mnist_source)

    app = FastAPI(
        title="edgelearn playground",
        version=edgelearn.__version__,
        description="Train and run models in the browser with TensorFlow.js; move them to and "
        "from Python. Models are TF.js layers-model folders.",
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(BodyLimit, limit=max_upload_bytes)
    app.state.store, app.state.bases, app.state.mnist = store, bases, mnist

    @app.exception_handler(StoreError)
    async def store_error(request: Request, error: StoreError) -> JSONResponse:
        if isinstance(error, ShapeMismatch):
            detail: Any = {
                "message": str(error),
                "input": error.input_name,
                "expected_shape": error.expected,
                "received_shape": error.received,
            }
        else:
            detail = str(error)
        return JSONResponse({"detail": detail}, status_code=error.status)

    @app.get("/api/info", response_model=ServerInfo, tags=["server"])
    def info() -> dict[str, Any]:
        """Versions and the server's settings (the pages show them)."""
        return {
            "edgelearn": edgelearn.__version__,
            "tfjs": TFJS_VERSION,
            "allow_overwrite": store.allow_overwrite,
            "max_upload_bytes": max_upload_bytes,
            "mnist_format": "ELMN: magic, uint32 n, uint32 total, uint16 rows, uint16 cols, "
            "n*rows*cols uint8 pixels, n uint8 labels (little-endian)",
        }

    @app.get("/api/models", response_model=ModelList, tags=["models"])
    def list_models() -> dict[str, Any]:
        """Every model in the models folder: name, size, parameters, input/output shapes."""
        return {"models": store.list()}

    @app.get(
        "/api/models/{name}", response_model=ModelInfo, responses=_errors(404), tags=["models"]
    )
    def get_model(name: ModelName) -> dict[str, Any]:
        """One model's description."""
        return store.describe(name)

    @app.post(
        "/api/models/{name}",
        response_model=ModelInfo,
        status_code=201,
        tags=["models"],
        responses=_errors(400, 409, 413, 422),
        openapi_extra={"requestBody": _UPLOAD_BODY},
    )
    async def upload_model(
        name: ModelName,
        request: Request,
        overwrite: Annotated[
            bool,
            Query(
                description="replace an existing model (needs a server "
                "started with --allow-overwrite)"
            ),
        ] = False,
    ) -> dict[str, Any]:
        """Receive a model exactly as ``model.save(tf.io.http(url))`` sends it: a multipart body
        with a ``model.json`` part and a ``model.weights.bin`` part. The model is built by
        edgelearn before anything is written, then committed atomically."""
        store.check_may_write(name, overwrite)  # 409 before reading a large body
        parts = await _read_upload(request)
        return await run_in_threadpool(
            store.receive, name, parts[UPLOAD_JSON_PART], parts.get(UPLOAD_WEIGHTS_PART), overwrite
        )

    @app.get(
        "/models/{name}/{filename}",
        tags=["models"],
        response_class=FileResponse,
        responses={
            200: {"content": {"application/json": {}, "application/octet-stream": {}}},
            **_errors(404),
        },
    )
    def model_file(name: ModelName, filename: str) -> FileResponse:
        """``model.json`` or one of the weight files its manifest lists (nothing else), for
        ``tf.loadLayersModel('/models/<name>/model.json')``."""
        path = store.file_path(name, filename)
        return _file(path)

    @app.post(
        "/api/predict/{name}",
        response_model=PredictResponse,
        tags=["predict"],
        responses={**_errors(404, 413), 422: {"model": PredictError}},
    )
    def predict(name: ModelName, body: PredictRequest) -> dict[str, Any]:
        """Run a model with edgelearn in Python: the same answer the browser computes."""
        start = time.perf_counter()
        result = store.predict(name, body.inputs)
        result["seconds"] = time.perf_counter() - start
        return result

    @app.get(
        "/api/data/mnist",
        tags=["data"],
        response_class=Response,
        responses={
            200: {
                "content": {"application/octet-stream": {}},
                "description": "ELMN blob: see /api/info and docs/playground.md",
            }
        },
    )
    def mnist_data(
        split: Annotated[Literal["train", "test"], Query()] = "train",
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=data_module.MNIST_MAX_LIMIT)] = 1000,
    ) -> Response:
        """MNIST digits as bytes: 16-byte header, uint8 pixels, uint8 labels. ``train`` is the
        70% part, ``test`` the held-out 30% (with the offline copy; Keras' split otherwise)."""
        try:
            blob = mnist.blob(split, offset, limit)
        except (OSError, RuntimeError) as error:
            raise HTTPException(503, f"MNIST is not available: {error}") from None
        return Response(blob, media_type="application/octet-stream")

    @app.get("/api/base", response_model=BaseList, tags=["base models"])
    def list_bases() -> dict[str, Any]:
        """The feature extractors for transfer learning (MobileNetV2, no top, average pooling,
        1280 features, input RGB in [0, 1])."""
        return {"bases": [bases.describe(name) for name in data_module.BASE_NAMES]}

    @app.get(
        "/api/base/{base}/{filename}",
        tags=["base models"],
        response_class=FileResponse,
        responses={
            200: {"content": {"application/json": {}, "application/octet-stream": {}}},
            **_errors(404, 503),
        },
    )
    def base_file(base: BaseName, filename: str) -> FileResponse:
        """A feature extractor's ``model.json`` or weight file; the first request builds it
        with edgelearn (from the nsfwjs MobileNetV2 weights) and saves it in the cache."""
        try:
            folder = bases.folder(base)
        except (OSError, RuntimeError) as error:
            raise HTTPException(503, f"cannot build {base}: {error}") from None
        return _file(_listed_file(folder, filename))

    @app.get("/vendor/{filename}", include_in_schema=False)
    def vendor(filename: str) -> FileResponse:
        path = vendor_file(filename)
        if path is None:
            raise HTTPException(404, f"no vendor file {filename!r}: run `make setup` (npm ci)")
        media = "application/wasm" if filename.endswith(".wasm") else "text/javascript"
        return FileResponse(path, media_type=media)

    # check_dir=False: an install without the pages still serves the API (serve() warns).
    app.mount("/", StaticFiles(directory=WEB_DIR, html=True, check_dir=False), name="web")
    return app


def _file(path: pathlib.Path) -> FileResponse:
    media = "application/json" if path.suffix == ".json" else "application/octet-stream"
    return FileResponse(path, media_type=media, headers=_NO_CACHE)


def _listed_file(folder: pathlib.Path, filename: str) -> pathlib.Path:
    """``model.json`` or a weight file its manifest lists, inside ``folder``."""
    if filename == MODEL_FILE:
        return folder / MODEL_FILE
    content = json.loads((folder / MODEL_FILE).read_bytes())
    path = (folder / filename).resolve()
    if filename not in manifest_files(content) or not path.is_relative_to(folder.resolve()):
        raise HTTPException(404, f"no file {filename!r} in this model")
    return path


async def _read_upload(request: Request) -> dict[str, bytes]:
    """The parts of a ``tf.io.http`` upload, by name; 400 for a body that is not one."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise HTTPException(
            400,
            f"expected a multipart/form-data body with '{UPLOAD_JSON_PART}' and "
            f"'{UPLOAD_WEIGHTS_PART}' parts (what tf.io.http sends), got {content_type or 'none'}",
        )

    async def stream() -> AsyncGenerator[bytes, None]:
        async for chunk in request.stream():
            yield chunk

    parser = MultiPartParser(request.headers, stream(), max_files=4, max_fields=4)
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise HTTPException(400, f"malformed multipart body: {error.message}") from None
    parts: dict[str, bytes] = {}
    try:
        for key, value in form.multi_items():
            if key not in (UPLOAD_JSON_PART, UPLOAD_WEIGHTS_PART):
                raise HTTPException(
                    400,
                    f"unexpected part {key!r}: send '{UPLOAD_JSON_PART}' and "
                    f"'{UPLOAD_WEIGHTS_PART}'",
                )
            if key in parts:
                raise HTTPException(400, f"the part {key!r} appears twice")
            parts[key] = await value.read() if isinstance(value, UploadFile) else value.encode()
    finally:
        await form.close()
    if UPLOAD_JSON_PART not in parts:
        raise HTTPException(400, f"the upload lacks its '{UPLOAD_JSON_PART}' part")
    return parts
