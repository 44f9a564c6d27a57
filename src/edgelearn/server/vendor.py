"""The TensorFlow.js files the pages load, served by the playground itself (never a CDN).

``make setup`` copies them from ``node_modules`` into ``src/edgelearn/web/vendor/`` (a build
output, not committed); a source checkout without that copy falls back to ``node_modules``
found by :func:`edgelearn.utils.files.find_node_package`. Only the files listed here are served.

Example:
    >>> sorted(VENDOR_FILES)[:2]
    ['tf-backend-wasm.min.js', 'tf.min.js']
"""

from __future__ import annotations

import pathlib

from edgelearn.utils.files import find_node_package

WEB_DIR = pathlib.Path(__file__).resolve().parent.parent / "web"
VENDOR_DIR = WEB_DIR / "vendor"

#: served name -> (npm package, path inside it). The pages load tf.min.js (the UMD build, which
#: defines the global ``tf`` the ES modules use) and the wasm backend, which fetches its .wasm
#: binaries from the folder given to ``tf.wasm.setWasmPaths``.
VENDOR_FILES: dict[str, tuple[str, str]] = {
    "tf.min.js": ("@tensorflow/tfjs", "dist/tf.min.js"),
    "tf-backend-wasm.min.js": ("@tensorflow/tfjs-backend-wasm", "dist/tf-backend-wasm.min.js"),
    "tfjs-backend-wasm.wasm": ("@tensorflow/tfjs-backend-wasm", "dist/tfjs-backend-wasm.wasm"),
    "tfjs-backend-wasm-simd.wasm": (
        "@tensorflow/tfjs-backend-wasm",
        "dist/tfjs-backend-wasm-simd.wasm",
    ),
    "tfjs-backend-wasm-threaded-simd.wasm": (
        "@tensorflow/tfjs-backend-wasm",
        "dist/tfjs-backend-wasm-threaded-simd.wasm",
    ),
}


def vendor_file(name: str) -> pathlib.Path | None:
    """Where to read vendor file ``name`` from, or None (unknown name, or not installed).

    Example:
        >>> vendor_file("../../etc/passwd") is None
        True
    """
    if name not in VENDOR_FILES:
        return None
    copied = VENDOR_DIR / name
    if copied.is_file():
        return copied
    package, relative = VENDOR_FILES[name]
    folder = find_node_package(package)
    if folder is not None and (folder / relative).is_file():
        return folder / relative
    return None


def missing_vendor_files() -> list[str]:
    """The vendor files that neither the package nor node_modules provides."""
    return [name for name in VENDOR_FILES if vendor_file(name) is None]
