"""`edgelearn serve`: arguments, and the real command answering on 127.0.0.1."""

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip(
    "fastapi", reason="the playground needs the web extra: pip install 'edgelearn[web]'"
)

import edgelearn as el  # noqa: E402
from edgelearn import cli  # noqa: E402


def test_serve_arguments_and_defaults():
    args = cli.build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.models, args.allow_overwrite) == (
        "127.0.0.1",
        8000,
        "models",
        False,
    )
    args = cli.build_parser().parse_args(
        [
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "9000",
            "--models",
            "m",
            "--allow-overwrite",
            "--max-upload-mb",
            "5",
        ]
    )
    assert (args.host, args.port, args.models, args.allow_overwrite, args.max_upload_mb) == (
        "0.0.0.0",
        9000,
        "m",
        True,
        5,
    )


def test_edgelearn_serve_runs_and_answers(tmp_path):
    el.Sequential([el.layers.Input((2,)), el.layers.Dense(1)]).save(tmp_path / "models" / "m")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgelearn.cli",
            "serve",
            "--port",
            str(port),
            "--models",
            str(tmp_path / "models"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/models", timeout=2) as r:
                    models = json.load(r)["models"]
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        assert [m["name"] for m in models] == ["m"]
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0]
    assert f"http://127.0.0.1:{port}/" in output
