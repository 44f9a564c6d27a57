"""Training callbacks with the Keras hooks, History, EarlyStopping and the progress display.

Example:
    >>> import edgelearn as el
    >>> seen = []
    >>> cb = el.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    >>> cb.on_epoch_end(0, {"loss": 1.0}); seen
    [0]
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable
from typing import IO, Any

Logs = dict[str, float]


class Callback:
    """Base class. ``self.model`` is set before training; ``self.params`` holds epochs/steps."""

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: Logs | None = None) -> None: ...
    def on_train_end(self, logs: Logs | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None: ...
    def on_train_batch_begin(self, batch: int, logs: Logs | None = None) -> None: ...
    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None: ...
    def on_test_begin(self, logs: Logs | None = None) -> None: ...
    def on_test_end(self, logs: Logs | None = None) -> None: ...
    def on_test_batch_begin(self, batch: int, logs: Logs | None = None) -> None: ...
    def on_test_batch_end(self, batch: int, logs: Logs | None = None) -> None: ...
    def on_predict_begin(self, logs: Logs | None = None) -> None: ...
    def on_predict_end(self, logs: Logs | None = None) -> None: ...


class CallbackList:
    """Calls the same hook on every callback, in order."""

    def __init__(self, callbacks: list[Callback], model: Any, params: dict[str, Any]):
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(
                    "callbacks must be edgelearn.callbacks.Callback instances, "
                    f"received {callback!r}"
                )
            callback.set_model(model)
            callback.set_params(params)
        self.callbacks = callbacks

    def __getattr__(self, hook: str) -> Callable[..., None]:
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args: Any) -> None:
            for callback in self.callbacks:
                getattr(callback, hook)(*args)

        return call


class History(Callback):
    """Records the logs of every epoch: ``history.history["val_accuracy"][-1]``."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class LambdaCallback(Callback):
    """A callback from plain functions.

    For example ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``.
    """

    def __init__(self, **hooks: Callable[..., None]):
        super().__init__()
        for hook, fn in hooks.items():
            if not hook.startswith("on_") or not hasattr(Callback, hook):
                known = sorted(name for name in dir(Callback) if name.startswith("on_"))
                raise ValueError(
                    f"LambdaCallback got unknown hook {hook!r}; known hooks: {', '.join(known)}"
                )
            setattr(self, hook, fn)


class TerminateOnNaN(Callback):
    """Stops training as soon as a batch's loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: invalid loss {loss}, terminating training")
            self.model.stop_training = True


class EarlyStopping(Callback):
    """Stops training when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights`` the model gets the weights of its best epoch back at the end.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(
                f"EarlyStopping mode must be 'auto', 'min' or 'max'. Received: mode={mode!r}"
            )
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.monitor, self.min_delta, self.patience = monitor, abs(min_delta), int(patience)
        self.verbose, self.mode, self.baseline = verbose, mode, baseline
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch
        self.stopped_epoch = 0

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights = None
        self.best_epoch = 0

    def _improved(self, value: float, reference: float) -> bool:
        if self.mode == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(
                f"EarlyStopping is conditioned on metric '{self.monitor}', which is not available. "
                f"Available metrics are: {', '.join(logs or {})}",
                stacklevel=2,
            )
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._improved(value, self.best):
            self.best, self.best_epoch = value, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improved(value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(
                    "Restoring model weights from the end of the best epoch: "
                    f"{self.best_epoch + 1}."
                )
            self.model.set_weights(self.best_weights)


def format_logs(logs: Logs) -> str:
    return " - ".join(f"{key}: {value:.4f}" for key, value in logs.items())


class ProgressLogger(Callback):
    """What ``fit(verbose=...)`` shows: 1 = a progress bar per epoch, 2 = one line per epoch.

    The bar uses rich when it is installed and the output is a terminal, plain text otherwise.
    """

    def __init__(self, verbose: int, stream: IO[str] | None = None):
        super().__init__()
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self._bar: Any = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()
        self.epoch = epoch
        if self.verbose == 1:
            self._bar = _make_bar(
                self.stream, f"Epoch {epoch + 1}/{self.params['epochs']}", self.params["steps"]
            )

    def on_train_batch_end(self, batch, logs=None):
        if self._bar is not None:
            self._bar.update(batch + 1, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.epoch_start
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        line = (
            f"Epoch {epoch + 1}/{self.params['epochs']} - {seconds:.1f}s - "
            f"{format_logs(logs or {})}"
        )
        print(line, file=self.stream, flush=True)


def _make_bar(stream: IO[str], title: str, total: int) -> Any:
    try:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )
    except ImportError:
        return _TextBar(stream, title, total)
    return _RichBar(
        Progress(
            TextColumn(title),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[logs]}"),
            console=Console(file=stream),
            transient=True,
        ),
        total,
    )


class _RichBar:
    def __init__(self, progress: Any, total: int):
        self.progress = progress
        self.task = progress.add_task("", total=total, logs="")
        progress.start()

    def update(self, step: int, logs: Logs) -> None:
        self.progress.update(self.task, completed=step, logs=format_logs(logs))

    def close(self) -> None:
        self.progress.stop()


class _TextBar:
    def __init__(self, stream: IO[str], title: str, total: int):
        self.stream, self.title, self.total = stream, title, total
        self.last_draw = 0.0

    def update(self, step: int, logs: Logs) -> None:
        now = time.perf_counter()
        if step < self.total and now - self.last_draw < 0.1:  # redraw at most ten times a second
            return
        self.last_draw = now
        done = int(30 * step / max(self.total, 1))
        bar = "=" * done + "." * (30 - done)
        self.stream.write(f"\r{self.title} [{bar}] {step}/{self.total} - {format_logs(logs)}")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\r\x1b[2K")
        self.stream.flush()


def resolve_verbose(verbose: int | str, stream: IO[str] | None = None) -> int:
    """Keras' ``verbose='auto'``: a bar on a terminal, one line per epoch otherwise."""
    if verbose == "auto":
        stream = stream or sys.stdout
        return 1 if hasattr(stream, "isatty") and stream.isatty() else 2
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2. Received: verbose={verbose!r}")
    return int(verbose)
