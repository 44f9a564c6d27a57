"""Install size: the disk space ``pip install edgelearn`` takes, against numpy, onnxruntime, torch.

The issue's target is under 80 MB for the core install (edgelearn and its one dependency, numpy).

- edgelearn itself is measured from a real install: its wheel is built from a copy of this
  checkout (``pip wheel --no-deps``, without build isolation where the installed setuptools
  can build it) and installed with
  ``pip install --no-deps --target`` into an empty folder, as pip would put it into a fresh
  virtualenv's site-packages (byte-compiled ``.pyc`` files included), then that folder is summed.
- Every other package is measured where it is installed already (this virtualenv): the files
  its ``importlib.metadata`` record lists (``.pyc`` files included), summed, so no big package is
  downloaded again. Each row is the package with everything it requires, transitively (extras
  not asked for are left out); packages that are not installed are named.

Sizes are apparent file sizes (``st_size``) in MB (10^6 bytes).

Run (from the repository root; the onnx and torch rows need ``pip install -e ".[bench]"``):

    python benchmarks/install_size.py
"""

from __future__ import annotations

import argparse
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata

from _common import source_revision
from packaging.requirements import Requirement

TARGET_MB = 80.0
ROOT = pathlib.Path(__file__).resolve().parent.parent
ROWS = (  # label, requirements
    ("edgelearn core: pip install edgelearn", ("edgelearn",)),
    ("numpy alone", ("numpy",)),
    ("edgelearn[jit] (adds numba)", ("edgelearn", "numba")),
    ("edgelearn[onnx] (adds onnx, onnxruntime)", ("edgelearn", "onnx", "onnxruntime")),
    ("onnxruntime", ("onnxruntime",)),
    ("onnx", ("onnx",)),
    ("torch (CPU build)", ("torch",)),
)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(names: tuple[str, ...]) -> tuple[list[metadata.Distribution], list[str]]:
    """The installed distributions ``names`` need, transitively, and the required ones missing."""
    found: dict[str, metadata.Distribution] = {}
    missing: list[str] = []
    pending = list(names)
    while pending:
        name = canonical(pending.pop())
        if name in found or name in missing:
            continue
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        found[name] = distribution
        for text in distribution.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return sorted(found.values(), key=lambda d: canonical(d.metadata["Name"])), missing


def recorded_bytes(distribution: metadata.Distribution) -> int:
    """Sum of the sizes of the files the distribution's record lists, where they exist."""
    total = 0
    for file in distribution.files or []:
        path = pathlib.Path(file.locate())
        if path.is_file():
            total += path.stat().st_size
    return total


def folder_bytes(folder: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def edgelearn_install_bytes() -> tuple[int, int]:
    """edgelearn's own files after a real (non-editable) pip install into an empty folder: all
    of them, and those of the browser playground (``edgelearn/web``, TF.js included)."""
    with tempfile.TemporaryDirectory(prefix="install_size_") as temp:
        source = pathlib.Path(temp) / "source"
        source.mkdir()
        # A copy, so that the build writes nothing into the checkout.
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (ROOT / name).exists():
                shutil.copy2(ROOT / name, source / name)
        shutil.copytree(
            ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
        wheels, target = pathlib.Path(temp) / "wheels", pathlib.Path(temp) / "site-packages"
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
        build = [*pip, "wheel", "--no-deps", "-w", str(wheels), str(source)]
        # Offline with the environment's setuptools first; where that one is too old for
        # pyproject.toml (a fresh virtualenv's), with the setuptools it asks for from PyPI.
        if subprocess.run(
            [*build, "--no-build-isolation"], capture_output=True, check=False
        ).returncode:
            subprocess.run(build, check=True)
        (wheel,) = wheels.glob("edgelearn-*.whl")
        subprocess.run(
            [*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
            check=True,
        )
        # --target also writes the console script; it belongs to the install, so it counts.
        return folder_bytes(target), folder_bytes(target / "edgelearn" / "web")


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args(argv)
    own, web = edgelearn_install_bytes()
    numpy_bytes = recorded_bytes(metadata.distribution("numpy"))
    print(
        f"# install size, Python {platform.python_version()} on {platform.machine()} "
        f"{platform.system()}; edgelearn at {source_revision()}\n"
    )
    print(
        "| install | packages (with everything they require) | MB | MB beyond numpy "
        f"| / {TARGET_MB:.0f} MB target |"
    )
    print("|---|---|--:|--:|--:|")
    core = None
    for label, names in ROWS:
        distributions, missing = closure(names)
        total = 0
        parts = []
        for distribution in distributions:
            name = distribution.metadata["Name"]
            size = own if canonical(name) == "edgelearn" else recorded_bytes(distribution)
            total += size
            parts.append(f"{name} {distribution.version} ({size / 1e6:.1f})")
        if missing:
            parts.append("not installed: " + ", ".join(missing))
        uses_numpy = any(canonical(d.metadata["Name"]) == "numpy" for d in distributions)
        beyond = total - (numpy_bytes if uses_numpy else 0)
        print(
            f"| {label} | {'; '.join(parts)} | {total / 1e6:.1f} | {beyond / 1e6:.1f} "
            f"| {total / 1e6 / TARGET_MB:.2f}x |"
        )
        if names == ("edgelearn",):
            core = total
    if core is not None:
        verdict = "meets" if core / 1e6 < TARGET_MB else "misses"
        print(
            f"\nedgelearn core: {core / 1e6:.1f} MB, which {verdict} the < {TARGET_MB:.0f} MB "
            f"target; edgelearn's own files are {own / 1e6:.2f} MB of it (the browser "
            f"playground's static files, TF.js included, {web / 1e6:.2f} MB), numpy "
            f"{numpy_bytes / 1e6:.1f} MB."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
