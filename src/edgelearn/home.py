"""Where edgelearn keeps downloaded and derived files.

This module is the one place that reads the ``EDGELEARN_HOME`` environment variable, so tests
(and users) can redirect every cache by setting it once.

Example:
    >>> folder = cache_dir("datasets")
    >>> folder.is_dir() and folder.parent == home()
    True
"""

from __future__ import annotations

import os
import pathlib

ENV_VAR = "EDGELEARN_HOME"
DEFAULT_HOME = pathlib.Path("~") / ".cache" / "edgelearn"


def home() -> pathlib.Path:
    """Return edgelearn's home folder (``$EDGELEARN_HOME`` or ``~/.cache/edgelearn``).

    The folder is not created; use :func:`cache_dir` for a folder you want to write into.

    Example:
        >>> import os
        >>> home() == pathlib.Path(os.environ.get(ENV_VAR) or "~/.cache/edgelearn").expanduser()
        True
    """
    # Read on every call (not at import) so a test's monkeypatch.setenv takes effect.
    value = os.environ.get(ENV_VAR, "")
    return pathlib.Path(value).expanduser() if value else DEFAULT_HOME.expanduser()


def cache_dir(*parts: str) -> pathlib.Path:
    """Return the folder ``home()/parts...``, creating it (and its parents) if needed.

    Each part must be a plain relative name, so a caller cannot escape the home folder.

    Example:
        >>> cache_dir("datasets", "fashion-mnist").relative_to(home()).as_posix()
        'datasets/fashion-mnist'
    """
    folder = home()
    for part in parts:
        if not isinstance(part, str) or not part:
            raise ValueError(f"cache_dir expects non-empty strings, received {part!r}")
        relative = pathlib.PurePath(part)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(
                f"cache_dir expects relative folder names without '..', received {part!r}"
            )
        folder = folder / relative
    folder.mkdir(parents=True, exist_ok=True)
    return folder
