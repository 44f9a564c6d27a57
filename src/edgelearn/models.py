"""Models: the training loop (``compile`` / ``fit`` / ``evaluate`` / ``predict``) and Sequential.

Example:
    >>> import numpy as np
    >>> import edgelearn as el
    >>> model = el.Sequential([el.layers.Input((4,)), el.layers.Dense(3, activation="softmax")])
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> history = model.fit(np.ones((8, 4)), np.zeros(8), epochs=2, verbose=0)
    >>> sorted(history.history)
    ['accuracy', 'loss']
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from edgelearn import callbacks as callbacks_module
from edgelearn import losses as losses_module
from edgelearn import metrics as metrics_module
from edgelearn import optimizers as optimizers_module
from edgelearn import random as el_random
from edgelearn.engine import Tensor, Variable, no_grad
from edgelearn.layers import InputLayer, Layer, deserialize, serialize
from edgelearn.layers.base import Shape, unique_name
from edgelearn.layers.graph import KerasTensor

_DEFAULT_BATCH_SIZE = 32


def _as_input_array(x: Any, argument: str) -> np.ndarray:
    array = np.asarray(x)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number) and array.dtype != bool:
        raise ValueError(f"{argument} must be a numeric array, received dtype {array.dtype}")
    if array.ndim == 0:
        raise ValueError(f"{argument} must have a batch axis, received a scalar")
    return array


class Model:
    """Base class of models: holds layers and implements training, evaluation and prediction."""

    def __init__(self, name: str | None = None):
        self.name = name or unique_name("model")
        self.optimizer: optimizers_module.Optimizer | None = None
        self.loss: losses_module.Loss | None = None
        self.stop_training = False
        self._metric_ids: list[Any] = []
        self._resolved_metrics: list[tuple[str, Callable]] | None = None

    # ----------------------------------------------------------------- to be provided by subclasses
    @property
    def layers(self) -> list[Layer]:
        raise NotImplementedError

    def call(self, inputs: Tensor, training: bool = False) -> Tensor:
        raise NotImplementedError

    def check_input(self, x: np.ndarray) -> None:
        """Raise a clear error when ``x`` does not fit the model's input."""

    # ----------------------------------------------------------------- weights
    @property
    def weights(self) -> list[Variable]:
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self) -> list[Variable]:
        return [w for layer in self.layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self) -> list[Variable]:
        return [w for layer in self.layers for w in layer.non_trainable_weights]

    def get_weights(self) -> list[np.ndarray]:
        """All weights as arrays, layer by layer in Keras order."""
        return [w.data.copy() for w in self.weights]

    def set_weights(self, weights: list[Any]) -> None:
        variables = self.weights
        if len(weights) != len(variables):
            raise ValueError(
                f"Model '{self.name}' has {len(variables)} weights, received a list of {len(weights)}"
            )
        arrays = [np.asarray(w) for w in weights]
        for variable, array in zip(variables, arrays):
            if array.shape != variable.shape:
                raise ValueError(
                    f"Weight '{variable.name}' has shape {variable.shape}, "
                    f"received an array of shape {array.shape}"
                )
        for variable, array in zip(variables, arrays):
            variable.assign(array)

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def __call__(self, inputs: Any, training: bool = False) -> Tensor:
        if not isinstance(inputs, Tensor):
            inputs = Tensor(np.asarray(inputs, dtype=np.float32))
        self.check_input(inputs.data)
        return self.call(inputs, training=training)

    # ----------------------------------------------------------------- compile
    def compile(
        self,
        optimizer: str | optimizers_module.Optimizer = "rmsprop",
        loss: str | losses_module.Loss | None = None,
        metrics: list[Any] | None = None,
    ) -> None:
        """Choose the optimizer, the loss and the metrics (names or objects, as in Keras)."""
        if loss is None:
            raise ValueError("compile() needs a loss, e.g. loss='sparse_categorical_crossentropy'")
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise ValueError(f"metrics must be a list, e.g. ['accuracy']. Received: metrics={metrics!r}")
        for metric in metrics or []:
            metrics_module.check_known(metric)
        self._metric_ids = list(metrics or [])
        self._resolved_metrics = None

    def _require_compiled(self, method: str) -> None:
        if self.optimizer is None or self.loss is None:
            raise RuntimeError(
                f"You must call compile() before {method}(), e.g. "
                "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', "
                "metrics=['accuracy'])"
            )

    def _metrics_for(self, y: np.ndarray, y_pred: np.ndarray) -> list[tuple[str, Callable]]:
        if self._resolved_metrics is None:
            self._resolved_metrics = [
                metrics_module.resolve(m, self.loss.name, y, y_pred) for m in self._metric_ids
            ]
        return self._resolved_metrics

    # ----------------------------------------------------------------- data checks
    def _check_data(self, x: Any, y: Any, x_name: str = "x", y_name: str = "y"):
        x = _as_input_array(x, x_name)
        y = _as_input_array(y, y_name)
        if len(x) != len(y):
            raise ValueError(
                f"{x_name} and {y_name} must have the same number of samples, "
                f"received len({x_name})={len(x)} and len({y_name})={len(y)}"
            )
        if len(x) == 0:
            raise ValueError(f"{x_name} is empty: there is nothing to train or evaluate on")
        self.check_input(x)
        self._check_targets(y, y_name)
        return x, y

    def _check_targets(self, y: np.ndarray, y_name: str) -> None:
        units = self.output_shape[-1] if self.output_shape else None
        if isinstance(self.loss, losses_module.SparseCategoricalCrossentropy) and units is not None:
            if not np.issubdtype(y.dtype, np.integer) and not np.array_equal(y, np.round(y)):
                raise ValueError(f"{y_name} must hold integer class labels for {self.loss.name}")
            if y.size and (y.min() < 0 or y.max() >= units):
                bad = y[(y < 0) | (y >= units)].ravel()[0].item()
                raise ValueError(
                    f"{y_name} holds label {bad!r}, outside the model's {units} classes "
                    f"(labels must be in [0, {units - 1}])"
                )
        elif units is not None and self.loss is not None and y.ndim >= 2 and y.shape[-1] != units:
            raise ValueError(
                f"{y_name} has shape {y.shape} but the model outputs {units} values per sample; "
                f"for integer labels use loss='sparse_categorical_crossentropy'"
            )

    @property
    def output_shape(self) -> Shape | None:
        return None

    # ----------------------------------------------------------------- one step
    def _train_step(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        for variable in self.trainable_weights:
            variable.grad = None
        outputs = self.call(Tensor(np.asarray(x, dtype=np.float32)), training=True)
        loss = self.loss(y, outputs)
        if loss.requires_grad:
            loss.backward()
        self.optimizer.apply_gradients((v.grad, v) for v in self.trainable_weights)
        for variable in self.trainable_weights:
            variable.grad = None  # the graph and its buffers can go now
        return loss.item(), outputs.data

    def train_on_batch(self, x: Any, y: Any, return_dict: bool = False) -> Any:
        """One gradient step on one batch; returns the loss (and metrics) before the step."""
        self._require_compiled("train_on_batch")
        x, y = self._check_data(x, y)
        loss, y_pred = self._train_step(x, y)
        return self._format_result(self._batch_logs(loss, y, y_pred), return_dict)

    def test_on_batch(self, x: Any, y: Any, return_dict: bool = False) -> Any:
        self._require_compiled("test_on_batch")
        x, y = self._check_data(x, y)
        y_pred = self.predict_on_batch(x)
        loss = self.loss(y, Tensor(y_pred)).item()
        return self._format_result(self._batch_logs(loss, y, y_pred), return_dict)

    def predict_on_batch(self, x: Any) -> np.ndarray:
        with no_grad():
            return self(np.asarray(x, dtype=np.float32), training=False).data

    def _batch_logs(self, loss: float, y: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
        logs = {"loss": loss}
        for name, fn in self._metrics_for(y, y_pred):
            logs[name] = float(np.mean(fn(y, y_pred)))
        return logs

    def _format_result(self, logs: dict[str, float], return_dict: bool) -> Any:
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    # ----------------------------------------------------------------- fit
    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: int | str = "auto",
        callbacks: list[callbacks_module.Callback] | None = None,
        validation_split: float = 0.0,
        validation_data: tuple[Any, Any] | None = None,
        shuffle: bool = True,
        initial_epoch: int = 0,
    ) -> callbacks_module.History:
        """Train for ``epochs`` epochs; calling it again continues from the current weights.

        ``validation_split`` holds out the last fraction of ``x``/``y`` (before shuffling), as
        Keras does. Returns a History whose ``.history`` has per-epoch ``loss``, the metrics, and
        their ``val_`` versions when there is validation data.
        """
        self._require_compiled("fit")
        batch_size = self._check_batch_size(batch_size)
        if not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer. Received: epochs={epochs!r}")
        if not 0 <= validation_split < 1:
            raise ValueError(
                f"validation_split must be in [0, 1). Received: validation_split={validation_split!r}"
            )
        x, y = self._check_data(x, y)
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (x_val, y_val)")
            x_val, y_val = self._check_data(*validation_data, x_name="x_val", y_name="y_val")
        elif validation_split:
            split = int(len(x) * (1 - validation_split))
            if split == 0 or split == len(x):
                raise ValueError(
                    f"validation_split={validation_split} leaves no samples for training or "
                    f"validation out of {len(x)}"
                )
            x, x_val, y, y_val = x[:split], x[split:], y[:split], y[split:]
        else:
            x_val = y_val = None

        steps = math.ceil(len(x) / batch_size)
        history = callbacks_module.History()
        verbose = callbacks_module.resolve_verbose(verbose)
        extra = [callbacks_module.ProgressLogger(verbose)] if verbose else []
        callback_list = callbacks_module.CallbackList(
            [*(callbacks or []), *extra, history],
            self,
            {"epochs": initial_epoch + epochs, "steps": steps, "verbose": verbose},
        )
        self.stop_training = False
        logs: dict[str, float] = {}
        callback_list.on_train_begin(logs)
        for epoch in range(initial_epoch, initial_epoch + epochs):
            callback_list.on_epoch_begin(epoch, {})
            totals: dict[str, float] = {}
            seen = 0
            for batch, index in enumerate(self._batches(len(x), batch_size, shuffle)):
                callback_list.on_train_batch_begin(batch, {})
                loss, y_pred = self._train_step(x[index], y[index])
                batch_logs = self._batch_logs(loss, y[index], y_pred)
                for key, value in batch_logs.items():
                    totals[key] = totals.get(key, 0.0) + value * len(index)
                seen += len(index)
                running = {key: total / seen for key, total in totals.items()}
                callback_list.on_train_batch_end(batch, running)
                if not math.isfinite(loss):
                    warnings.warn(
                        f"Training stopped: the loss became {loss} at epoch {epoch + 1}, "
                        f"batch {batch + 1} (of {steps}). Try a lower learning rate or check the "
                        "inputs for NaN/inf values.",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    self.stop_training = True
                if self.stop_training:
                    break
            logs = {key: total / seen for key, total in totals.items()}
            if x_val is not None and math.isfinite(logs["loss"]):
                val_logs = self.evaluate(x_val, y_val, batch_size=batch_size, verbose=0, return_dict=True)
                logs.update({f"val_{key}": value for key, value in val_logs.items()})
            callback_list.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        callback_list.on_train_end(logs)
        return history

    @staticmethod
    def _check_batch_size(batch_size: int | None) -> int:
        if batch_size is None:
            return _DEFAULT_BATCH_SIZE
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer. Received: batch_size={batch_size!r}")
        return int(batch_size)

    @staticmethod
    def _batches(n_samples: int, batch_size: int, shuffle: bool) -> Iterator[np.ndarray]:
        order = el_random.generator().permutation(n_samples) if shuffle else np.arange(n_samples)
        for start in range(0, n_samples, batch_size):
            yield order[start : start + batch_size]

    # ----------------------------------------------------------------- evaluate / predict
    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        verbose: int | str = "auto",
        return_dict: bool = False,
    ) -> Any:
        """Loss and metrics over the whole of ``x``/``y`` (sample-weighted means of batches)."""
        self._require_compiled("evaluate")
        batch_size = self._check_batch_size(batch_size)
        x, y = self._check_data(x, y)
        totals: dict[str, float] = {}
        for index in self._batches(len(x), batch_size, shuffle=False):
            y_pred = self.predict_on_batch(x[index])
            loss = self.loss(y[index], Tensor(y_pred)).item()
            for key, value in self._batch_logs(loss, y[index], y_pred).items():
                totals[key] = totals.get(key, 0.0) + value * len(index)
        logs = {key: total / len(x) for key, total in totals.items()}
        if callbacks_module.resolve_verbose(verbose) and verbose:
            print(callbacks_module.format_logs(logs))
        return self._format_result(logs, return_dict)

    def predict(self, x: Any, batch_size: int | None = None, verbose: int | str = 0) -> np.ndarray:
        """Outputs for ``x``, computed in batches without recording gradients."""
        batch_size = self._check_batch_size(batch_size)
        x = _as_input_array(x, "x")
        self.check_input(x)
        outputs = [
            self.predict_on_batch(x[start : start + batch_size]) for start in range(0, len(x), batch_size)
        ]
        if not outputs:
            raise ValueError("predict() received an empty x")
        return np.concatenate(outputs)

    # ----------------------------------------------------------------- summary
    def summary(self, print_fn: Callable[[str], None] = print, line_length: int = 80) -> None:
        """Print a Keras-style table of layers, output shapes and parameter counts."""
        widths = (int(line_length * 0.45), int(line_length * 0.33))
        rows = [("Layer (type)", "Output Shape", "Param #")]
        for layer, shape in self._summary_rows():
            rows.append((f"{layer.name} ({type(layer).__name__})", str(shape), f"{layer.count_params():,}"))
        print_fn(f'Model: "{self.name}"')
        print_fn("_" * line_length)
        for i, (name, shape, params) in enumerate(rows):
            print_fn(f" {name:<{widths[0] - 1}}{shape:<{widths[1]}}{params:>{line_length - sum(widths) - 1}}")
            print_fn("=" * line_length if i in (0, len(rows) - 1) else "")
        trainable = sum(w.size for w in self.trainable_weights)
        total = self.count_params()
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {total - trainable:,}")

    def _summary_rows(self) -> list[tuple[Layer, Any]]:
        raise NotImplementedError


class Sequential(Model):
    """A plain stack of layers, each feeding the next.

    Example:
        >>> import edgelearn as el
        >>> model = el.Sequential([el.layers.Input((28, 28, 1)), el.layers.Conv2D(8, 5), el.layers.Flatten()])
        >>> model.output_shape
        (None, 4608)
    """

    def __init__(self, layers: list[Any] | None = None, name: str | None = None):
        super().__init__(name=name or unique_name("sequential"))
        self._layers: list[Layer] = []
        self._input_layer: InputLayer | None = None
        self._shapes: list[Shape] = []
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    @property
    def input_shape(self) -> Shape | None:
        return self._input_layer.batch_input_shape if self._input_layer else None

    @property
    def output_shape(self) -> Shape | None:
        return self._shapes[-1] if self._shapes else None

    def add(self, layer: Layer | KerasTensor) -> None:
        """Append a layer; an ``Input`` (or a first layer with ``input_shape``) fixes the input."""
        if isinstance(layer, KerasTensor) and isinstance(layer.node.layer, InputLayer):
            layer = layer.node.layer
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer or an Input, received {layer!r}")
        if isinstance(layer, InputLayer):
            if self._input_layer is not None or self._layers:
                raise ValueError("An Input can only be the first item of a Sequential model")
            self._input_layer = layer
            self._shapes = [layer.batch_input_shape]
            return
        if self._input_layer is None and not self._layers and layer.batch_input_shape is not None:
            self._input_layer = InputLayer(batch_shape=layer.batch_input_shape, dtype=layer.dtype)
            self._shapes = [self._input_layer.batch_input_shape]
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(f"All layers in a Sequential model need unique names; '{layer.name}' is taken")
        self._layers.append(layer)
        if self._shapes:
            self._build_layer(layer, self._shapes[-1])

    def _build_layer(self, layer: Layer, input_shape: Shape) -> None:
        layer.check_input_shape(input_shape)
        if not layer.built:
            layer.build(input_shape)
            layer.built = True
        self._shapes.append(tuple(layer.compute_output_shape(input_shape)))

    def build(self, input_shape: Shape) -> None:
        """Build every layer for inputs of ``input_shape`` (batch axis included)."""
        self._input_layer = InputLayer(batch_shape=tuple(input_shape))
        self._shapes = [self._input_layer.batch_input_shape]
        for layer in self._layers:
            self._build_layer(layer, self._shapes[-1])

    def check_input(self, x: np.ndarray) -> None:
        if self._input_layer is None:
            if not self._layers:
                raise ValueError(f"Sequential model '{self.name}' has no layers")
            self.build((None, *x.shape[1:]))
            return
        expected = self._input_layer.batch_input_shape
        if x.ndim != len(expected) or any(e is not None and e != r for e, r in zip(expected[1:], x.shape[1:])):
            raise ValueError(
                f"Model '{self.name}' expects input of shape {expected}, received x of shape {x.shape}"
            )

    def call(self, inputs: Tensor, training: bool = False) -> Tensor:
        outputs = inputs
        for layer in self._layers:
            outputs = layer.call(outputs, training=training)
        return outputs

    def _summary_rows(self):
        return list(zip(self._layers, self._shapes[1:] or ["?"] * len(self._layers)))

    def get_config(self) -> dict[str, Any]:
        layers = [serialize(layer) for layer in self._layers]
        if self._input_layer is not None:
            layers.insert(0, serialize(self._input_layer))
        return {"name": self.name, "layers": layers}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        if isinstance(config, list):  # Keras 2.0 stored the bare list of layers
            config = {"layers": config}
        return cls([deserialize(layer) for layer in config["layers"]], name=config.get("name"))
