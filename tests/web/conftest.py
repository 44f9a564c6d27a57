"""Fixtures for the playground tests: the app under TestClient, the server live in a thread,
and Debian's Chromium driven by Playwright (never `playwright install`).

The browser tests are skipped, with the reason, when /usr/bin/chromium, Playwright, or the
TensorFlow.js files (`make setup`) are missing. Screenshots land in test-artifacts/web/.
"""

import pathlib
import socket
import threading
import time
from types import SimpleNamespace

import pytest

# The test modules skip themselves (pytest.importorskip) when FastAPI or httpx is missing, so the
# fixtures import edgelearn.server only when used.

CHROMIUM = pathlib.Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    # A fake 320x240 webcam that the page may use without a permission prompt.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]


@pytest.fixture
def models_dir(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    return folder


@pytest.fixture
def make_client(models_dir, tmp_path):
    from fastapi.testclient import TestClient

    from edgelearn.server import create_app

    def make(**options):
        options.setdefault("mnist_source", "local")
        options.setdefault("base_cache", tmp_path / "bases")
        return TestClient(create_app(models_dir, **options))

    return make


@pytest.fixture
def client(make_client):
    return make_client()


# --------------------------------------------------------------------------- live server + browser
class UploadRecorder:
    """ASGI wrapper that keeps the raw body and headers of every model upload, so a test can
    look at (and replay) exactly what the browser's tf.io.http sent. Playwright does not expose
    multipart bodies built from Blobs, so they are taken where they arrive."""

    def __init__(self, app):
        self.app, self.uploads = app, []

    async def __call__(self, scope, receive, send):
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].startswith("/api/models/")
        ):
            await self.app(scope, receive, send)
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        record = {"path": scope["path"], "headers": headers, "body": b""}
        self.uploads.append(record)

        async def recording():
            message = await receive()
            record["body"] += message.get("body", b"")
            return message

        await self.app(scope, recording, send)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """The playground on a free port of 127.0.0.1, served by uvicorn in a thread."""
    import uvicorn

    from edgelearn.server import create_app

    models = tmp_path_factory.mktemp("live-models")
    app = create_app(models, mnist_source="local", base_cache=tmp_path_factory.mktemp("bases"))
    # Bind first and hand uvicorn the socket: no window in which another process takes the port.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    recorder = UploadRecorder(app)
    server = uvicorn.Server(uvicorn.Config(recorder, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the playground server did not start")
        time.sleep(0.05)
    yield SimpleNamespace(
        url=f"http://127.0.0.1:{port}", models=models, app=app, uploads=recorder.uploads
    )
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (the CI script does)")
    from edgelearn.server.vendor import missing_vendor_files

    missing = missing_vendor_files()
    if missing:
        pytest.skip(f"TensorFlow.js files missing ({', '.join(missing)}): run `make setup`")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):
    """A fresh page (own context: own IndexedDB, localStorage); fails the test on any
    uncaught JavaScript error."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.errors = errors
    yield page
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"
