"""The browser playground: ``edgelearn serve`` and the app behind it.

Pages (plain ES modules, TensorFlow.js served locally) train and run models in the browser; the
API moves them between the browser and Python as TF.js layers models. Needs the ``web`` extra:
``pip install edgelearn[web]`` (FastAPI, uvicorn, python-multipart). See docs/playground.md.

Example:
    >>> from edgelearn.server import create_app
    >>> import tempfile
    >>> app = create_app(tempfile.mkdtemp())
    >>> app.title
    'edgelearn playground'
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pathlib

# python-multipart is imported as python_multipart (>= 0.0.13) or multipart (older releases).
_MISSING = [
    name
    for name, modules in (
        ("fastapi", ["fastapi"]),
        ("uvicorn", ["uvicorn"]),
        ("python-multipart", ["python_multipart", "multipart"]),
    )
    if not any(importlib.util.find_spec(m) for m in modules)
]
if _MISSING:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"the edgelearn playground needs {', '.join(_MISSING)}: pip install 'edgelearn[web]'"
    )

from edgelearn.server.app import DEFAULT_MAX_UPLOAD_BYTES, create_app  # noqa: E402
from edgelearn.server.store import ModelStore, check_name  # noqa: E402
from edgelearn.server.vendor import WEB_DIR, missing_vendor_files  # noqa: E402

logger = logging.getLogger("edgelearn.server")


def serve(
    models_dir: str | os.PathLike[str] = "models",
    host: str = "127.0.0.1",
    port: int = 8000,
    allow_overwrite: bool = False,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
) -> None:
    """Run the playground with uvicorn until interrupted (what ``edgelearn serve`` does).

    Binds 127.0.0.1 unless told otherwise: the API writes into ``models_dir`` and runs models on
    request, which is for the machine's own user, not the network.
    """
    import uvicorn

    if not (WEB_DIR / "index.html").is_file():
        logger.warning("The playground's pages are not in %s: only the API will answer.", WEB_DIR)
    missing = missing_vendor_files()
    if missing:
        logger.warning(
            "TensorFlow.js files not found (%s): the pages will not run. Run `make setup` (or "
            "`npm ci`) in the edgelearn repository.",
            ", ".join(missing),
        )
    folder = pathlib.Path(models_dir).expanduser().resolve()
    app = create_app(folder, allow_overwrite=allow_overwrite, max_upload_bytes=max_upload_bytes)
    print(f"edgelearn playground on http://{host}:{port}/  (models in {folder})", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "ModelStore", "check_name", "create_app", "serve"]
