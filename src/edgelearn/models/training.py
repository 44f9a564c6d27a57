"""The Model base class: ``compile`` / ``fit`` / ``evaluate`` / ``predict`` for any model.

Internally every model has a list of inputs and a list of outputs; a model with one of each
takes and returns plain arrays, as in Keras. With several outputs the loss is the sum of the
per-output losses and the logs carry ``{output}_loss`` and ``{output}_{metric}`` too.

Example:
    >>> import numpy as np
    >>> import edgelearn as el
    >>> model = el.Sequential([el.layers.Input((4,)), el.layers.Dense(3, activation="softmax")])
    >>> model.compile(
    ...     optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    ... )
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
from edgelearn.engine import Tensor, Variable, allocator, gradients, no_grad, threads
from edgelearn.layers import Layer
from edgelearn.layers.base import Shape, batch_part, unique_name

_DEFAULT_BATCH_SIZE = 32


def _as_input_array(x: Any, argument: str) -> np.ndarray:
    array = np.asarray(x)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{argument} must be a numeric array, received dtype {array.dtype}")
    if array.ndim == 0:
        raise ValueError(f"{argument} must have a batch axis, received a scalar")
    return array


def _per_output(value: Any, names: list[str], argument: str) -> list[Any]:
    """One entry per output from a single value, a list in output order, or a dict by name."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"{argument} names unknown outputs {unknown}; the outputs are {names}")
        return [value.get(name) for name in names]
    if isinstance(value, (list, tuple)) and len(names) > 1:
        if len(value) != len(names):
            raise ValueError(
                f"{argument} has {len(value)} entries for a model with {len(names)} outputs {names}"
            )
        return list(value)
    return [value] * len(names)


def _sum_present(arrays: Any) -> np.ndarray | None:
    """The sum of the arrays that are not None (None if none is): gradients added up."""
    present = [a for a in arrays if a is not None]
    if not present:
        return None
    total = present[0]
    for array in present[1:]:
        total = total + array
    return total


class Model:
    """Base class of models: layers plus the training loop.

    ``el.Model(inputs, outputs)`` builds a functional model (see
    :class:`edgelearn.models.functional.Functional`).
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Model:
        if cls is Model:
            from edgelearn.models.functional import Functional

            return super().__new__(Functional)
        return super().__new__(cls)

    def __init__(self, name: str | None = None):
        self.name = name or unique_name("model")
        self.optimizer: optimizers_module.Optimizer | None = None
        self.losses: list[losses_module.Loss] | None = None
        self.stop_training = False
        self._metric_ids: list[list[Any]] = []
        self._resolved_metrics: list[list[tuple[str, Callable]]] | None = None

    # ----------------------------------------------------------------- provided by subclasses
    @property
    def layers(self) -> list[Layer]:
        raise NotImplementedError

    @property
    def input_shapes(self) -> list[Shape]:
        """Batch shapes of the inputs (empty until known)."""
        raise NotImplementedError

    @property
    def output_shapes(self) -> list[Shape]:
        raise NotImplementedError

    @property
    def output_names(self) -> list[str]:
        raise NotImplementedError

    @property
    def input_names(self) -> list[str]:
        raise NotImplementedError

    def forward(self, inputs: list[Tensor], training: bool = False) -> list[Tensor]:
        """Run the model on one Tensor per input; returns one Tensor per output."""
        raise NotImplementedError

    def build_from_data(self, xs: list[np.ndarray]) -> None:
        """Build a model whose input shape is not known yet from the first data it sees."""

    # ----------------------------------------------------------------- shapes, calling
    @property
    def input_shape(self) -> Shape | list[Shape] | None:
        shapes = self.input_shapes
        return None if not shapes else shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self) -> Shape | list[Shape] | None:
        shapes = self.output_shapes
        return None if not shapes else shapes[0] if len(shapes) == 1 else shapes

    def __call__(self, inputs: Any, training: bool = False) -> Any:
        xs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        xs = [x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=np.float32)) for x in xs]
        self._check_inputs([x.data for x in xs])
        allocator.use_default()
        outputs = self.forward(xs, training=training)
        return outputs[0] if len(outputs) == 1 else outputs

    def _inputs_list(self, x: Any, argument: str = "x") -> list[np.ndarray]:
        expected = len(self.input_shapes)
        if expected <= 1:
            return [_as_input_array(x, argument)]
        if isinstance(x, dict):
            names = self.input_names
            missing = [name for name in names if name not in x]
            if missing:
                raise ValueError(f"{argument} is missing inputs {missing}; the inputs are {names}")
            x = [x[name] for name in names]
        if not isinstance(x, (list, tuple)) or len(x) != expected:
            raise ValueError(
                f"Model '{self.name}' has {expected} inputs, so {argument} must be a list of "
                f"{expected} arrays"
            )
        return [_as_input_array(a, f"{argument}[{i}]") for i, a in enumerate(x)]

    def _targets_list(self, y: Any, argument: str = "y") -> list[np.ndarray]:
        names = self.output_names
        if len(names) > 1:
            if isinstance(y, dict):
                y = _per_output(y, names, argument)
            if not isinstance(y, (list, tuple)) or len(y) != len(names):
                raise ValueError(
                    f"Model '{self.name}' has {len(names)} outputs {names}, so {argument} must be "
                    f"a list of {len(names)} arrays"
                )
            return [_as_input_array(a, f"{argument}[{i}]") for i, a in enumerate(y)]
        return [_as_input_array(y, argument)]

    def _check_inputs(self, xs: list[np.ndarray]) -> None:
        if not self.input_shapes:
            self.build_from_data(xs)
        for i, (x, expected) in enumerate(zip(xs, self.input_shapes)):
            if x.ndim != len(expected) or any(
                e is not None and e != r for e, r in zip(expected[1:], x.shape[1:])
            ):
                name = "x" if len(xs) == 1 else f"x[{i}]"
                raise ValueError(
                    f"Model '{self.name}' expects input of shape {expected}, "
                    f"received {name} of shape {x.shape}"
                )

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
        """Set all weights (same order and shapes as ``get_weights``); checks everything first."""
        variables = self.weights
        if len(weights) != len(variables):
            raise ValueError(
                f"Model '{self.name}' has {len(variables)} weights, "
                f"received a list of {len(weights)}"
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

    def save(
        self,
        path: str,
        quantize: str | None = None,
        overwrite: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Save as a TensorFlow.js layers model folder (``model.json`` + weight shards) that
        ``tf.loadLayersModel`` and :func:`edgelearn.load_model` read; see docs/formats.md.

        ``quantize`` ('uint8', 'uint16' or 'float16') stores smaller, approximate weights;
        ``metadata`` is stored as the model's ``userDefinedMetadata``.
        """
        from edgelearn.io import tfjs

        tfjs.save(self, path, quantize=quantize, overwrite=overwrite, metadata=metadata)

    # ----------------------------------------------------------------- compile
    def compile(
        self,
        optimizer: str | optimizers_module.Optimizer = "rmsprop",
        loss: Any = None,
        metrics: Any = None,
    ) -> None:
        """Choose the optimizer, the loss(es) and the metrics (names or objects, as in Keras).

        With several outputs, ``loss`` and ``metrics`` may be one value for all outputs, a list
        in output order, or a dict by output name.
        """
        if loss is None:
            raise ValueError("compile() needs a loss, e.g. loss='sparse_categorical_crossentropy'")
        names = self.output_names
        self.optimizer = optimizers_module.get(optimizer)
        self.losses = [losses_module.get(item) for item in _per_output(loss, names, "loss")]
        if metrics is None:
            metrics = []
        if isinstance(metrics, dict):
            per_output = _per_output(metrics, names, "metrics")
        elif isinstance(metrics, (list, tuple)):
            per_output = [list(metrics)] * len(names)
        else:
            raise ValueError(
                f"metrics must be a list, e.g. ['accuracy']. Received: metrics={metrics!r}"
            )
        self._metric_ids = [
            list(m) if isinstance(m, (list, tuple)) else [] if m is None else [m]
            for m in per_output
        ]
        for ids in self._metric_ids:
            for metric in ids:
                metrics_module.check_known(metric)
        self._resolved_metrics = None

    @property
    def loss(self) -> losses_module.Loss | list[losses_module.Loss] | None:
        if self.losses is None:
            return None
        return self.losses[0] if len(self.losses) == 1 else self.losses

    def _require_compiled(self, method: str) -> None:
        if self.optimizer is None or self.losses is None:
            raise RuntimeError(
                f"You must call compile() before {method}(), e.g. "
                "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', "
                "metrics=['accuracy'])"
            )

    # ----------------------------------------------------------------- data checks
    def _check_data(self, x: Any, y: Any, x_name: str = "x", y_name: str = "y"):
        xs = self._inputs_list(x, x_name)
        ys = self._targets_list(y, y_name)
        lengths = {len(a) for a in xs + ys}
        if len(lengths) > 1:
            described = " and ".join(
                [f"len({x_name})={len(a)}" for a in xs] + [f"len({y_name})={len(a)}" for a in ys]
            )
            raise ValueError(
                f"{x_name} and {y_name} must have the same number of samples, received {described}"
            )
        if lengths == {0}:
            raise ValueError(f"{x_name} is empty: there is nothing to train or evaluate on")
        self._check_inputs(xs)
        for loss, target, shape, name in zip(
            self.losses, ys, self.output_shapes, self.output_names
        ):
            label = y_name if len(ys) == 1 else f"{y_name} for output '{name}'"
            self._check_targets(loss, target, shape, label)
        return xs, ys

    @staticmethod
    def _check_targets(loss: losses_module.Loss, y: np.ndarray, shape: Shape, y_name: str) -> None:
        units = shape[-1]
        if isinstance(loss, losses_module.SparseCategoricalCrossentropy) and units is not None:
            if not np.issubdtype(y.dtype, np.integer) and not np.array_equal(y, np.round(y)):
                raise ValueError(f"{y_name} must hold integer class labels for {loss.name}")
            if y.size and (y.min() < 0 or y.max() >= units):
                bad = y[(y < 0) | (y >= units)].ravel()[0].item()
                raise ValueError(
                    f"{y_name} holds label {bad!r}, outside the model's {units} classes "
                    f"(labels must be in [0, {units - 1}])"
                )
        elif units is not None and y.ndim >= 2 and y.shape[-1] != units:
            raise ValueError(
                f"{y_name} has shape {y.shape} but the model outputs {units} values per sample; "
                f"for integer labels use loss='sparse_categorical_crossentropy'"
            )

    # ----------------------------------------------------------------- one step
    def _loss_terms(self, ys: list[np.ndarray], outputs: list[Tensor]) -> list[Tensor]:
        return [loss(y, out) for loss, y, out in zip(self.losses, ys, outputs)]

    def _train_step(self, xs: list[np.ndarray], ys: list[np.ndarray]):
        """One optimizer step on a batch: (each output's loss, the weight penalty, predictions)."""
        n_samples = len(xs[0])
        variables = self.trainable_weights
        allocator.use_default()
        # Layers that draw random numbers draw the whole batch's now, whatever the split.
        step_layers = self._step_layers()
        for layer in step_layers:
            layer.start_step(n_samples)
        try:
            # A large batch splits over BLAS's threads (engine.threads): primitive by primitive,
            # or, where every layer treats samples on their own and every loss is a mean over
            # samples, by running each part of the batch through the whole model on a thread of
            # its own.
            parts = threads.run_batch(
                n_samples,
                sum(np.size(x) for x in xs),
                lambda start, stop: self._part_gradients(xs, ys, variables, start, stop, n_samples),
                by_sample=self._splits_by_sample(training=True)
                and all(type(loss).__call__ is losses_module.Loss.__call__ for loss in self.losses),
                min_elements=threads.MIN_TRAINING_SPLIT_ELEMENTS,
            )
        finally:
            for layer in step_layers:
                layer.end_step()
        grads = [_sum_present(part_grads) for part_grads in zip(*(part[0] for part in parts))]
        penalty = 0.0
        penalties = [p for layer in self.layers for p in layer.regularization_losses()]
        if penalties:
            total = penalties[0]
            for term in penalties[1:]:
                total = total + term
            grads = [_sum_present(pair) for pair in zip(grads, gradients(total, variables))]
            penalty = total.item()
        self.optimizer.apply_gradients(zip(grads, variables))
        losses = [sum(part_losses) for part_losses in zip(*(part[1] for part in parts))]
        preds = [
            outputs[0] if len(outputs) == 1 else np.concatenate(outputs)
            for outputs in zip(*(part[2] for part in parts))
        ]
        return losses, penalty, preds

    def _part_gradients(
        self,
        xs: list[np.ndarray],
        ys: list[np.ndarray],
        variables: list[Variable],
        start: int,
        stop: int,
        n_samples: int,
    ) -> tuple[list[np.ndarray | None], list[float], list[np.ndarray]]:
        """The gradients, losses and outputs of samples ``start:stop`` of a batch of
        ``n_samples``: each loss (a mean over the part) weighted by the part's share of the
        batch, so that the parts' gradients and losses add up to the batch's."""
        with batch_part(start):
            outputs = self.forward(
                [Tensor(np.asarray(x[start:stop], dtype=np.float32)) for x in xs], training=True
            )
        terms = self._loss_terms([y[start:stop] for y in ys], outputs)
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        share = (stop - start) / n_samples
        if share != 1:
            total = total * np.float32(share)
        return (
            gradients(total, variables),
            [term.item() * share for term in terms],
            [out.data for out in outputs],
        )

    def _splits_by_sample(self, training: bool) -> bool:
        """Whether every layer runs each sample on its own (see Layer.splits_by_sample), each
        layer once per step."""
        layers = self.layers
        return len(self._step_layers()) == len(layers) and all(
            layer.splits_by_sample(training) for layer in layers
        )

    def _step_layers(self) -> list[Layer]:
        """The layers whose start_step / end_step a training step calls: those that run once
        per step (a layer listed twice draws at each call instead)."""
        counts: dict[int, int] = {}
        for layer in self.layers:
            counts[id(layer)] = counts.get(id(layer), 0) + 1
        return [layer for layer in self.layers if counts[id(layer)] == 1]

    def _predict_lists(
        self,
        xs: list[np.ndarray],
        forward: Callable[[list[np.ndarray]], list[np.ndarray]] | None = None,
    ) -> list[np.ndarray]:
        """The outputs for one batch, computed by ``forward`` (arrays to arrays; by default
        this model's layers), on a batch's parts on threads of their own where that pays."""
        if forward is None:

            def forward(arrays: list[np.ndarray]) -> list[np.ndarray]:
                return [out.data for out in self.forward([Tensor(a) for a in arrays])]

        def run(start: int, stop: int) -> list[np.ndarray]:
            with no_grad():  # on the thread that runs the part: grad mode is per thread
                return forward([np.asarray(x[start:stop], dtype=np.float32) for x in xs])

        allocator.use_default()
        parts = threads.run_batch(
            len(xs[0]),
            sum(np.size(x) for x in xs),
            run,
            by_sample=self._splits_by_sample(training=False),
            min_elements=threads.MIN_INFERENCE_SPLIT_ELEMENTS,
        )
        return [
            outputs[0] if len(parts) == 1 else np.concatenate(outputs) for outputs in zip(*parts)
        ]

    def _penalty(self) -> float:
        """The current weight-regularization penalty (part of the reported loss, as in Keras)."""
        with no_grad():
            return float(
                sum(p.item() for layer in self.layers for p in layer.regularization_losses())
            )

    def _batch_logs(
        self,
        losses: list[float],
        ys: list[np.ndarray],
        preds: list[np.ndarray],
        penalty: float = 0.0,
    ) -> dict[str, float]:
        if self._resolved_metrics is None:
            self._resolved_metrics = [
                [metrics_module.resolve(m, loss.name, y, p) for m in ids]
                for ids, loss, y, p in zip(self._metric_ids, self.losses, ys, preds)
            ]
        logs = {"loss": float(sum(losses)) + penalty}
        several = len(preds) > 1
        for name, loss, resolved, y, p in zip(
            self.output_names, losses, self._resolved_metrics, ys, preds
        ):
            if several:
                logs[f"{name}_loss"] = loss
            for metric_name, fn in resolved:
                logs[f"{name}_{metric_name}" if several else metric_name] = float(np.mean(fn(y, p)))
        return logs

    @staticmethod
    def _format_result(logs: dict[str, float], return_dict: bool) -> Any:
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def train_on_batch(self, x: Any, y: Any, return_dict: bool = False) -> Any:
        """One gradient step on one batch; returns the loss (and metrics) before the step."""
        self._require_compiled("train_on_batch")
        xs, ys = self._check_data(x, y)
        losses, penalty, preds = self._train_step(xs, ys)
        return self._format_result(self._batch_logs(losses, ys, preds, penalty), return_dict)

    def test_on_batch(self, x: Any, y: Any, return_dict: bool = False) -> Any:
        self._require_compiled("test_on_batch")
        xs, ys = self._check_data(x, y)
        preds = self._predict_lists(xs)
        losses = [t.item() for t in self._loss_terms(ys, [Tensor(p) for p in preds])]
        return self._format_result(
            self._batch_logs(losses, ys, preds, self._penalty()), return_dict
        )

    def predict_on_batch(self, x: Any) -> Any:
        xs = self._inputs_list(x)
        self._check_inputs(xs)
        preds = self._predict_lists(xs)
        return preds[0] if len(preds) == 1 else preds

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
        """Train from epoch ``initial_epoch`` up to epoch ``epochs`` (as in Keras, ``epochs`` is
        the number of the last epoch, not a count); calling it again continues from the current
        weights.

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
                "validation_split must be in [0, 1). "
                f"Received: validation_split={validation_split!r}"
            )
        xs, ys = self._check_data(x, y)
        n_samples = len(xs[0])
        validation = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (x_val, y_val)")
            validation = self._check_data(*validation_data, x_name="x_val", y_name="y_val")
        elif validation_split:
            split = int(n_samples * (1 - validation_split))
            if split == 0 or split == n_samples:
                raise ValueError(
                    f"validation_split={validation_split} leaves no samples for training or "
                    f"validation out of {n_samples}"
                )
            validation = ([a[split:] for a in xs], [a[split:] for a in ys])
            xs, ys = [a[:split] for a in xs], [a[:split] for a in ys]
            n_samples = split

        steps = math.ceil(n_samples / batch_size)
        history = callbacks_module.History()
        verbose = callbacks_module.resolve_verbose(verbose)
        extra = [callbacks_module.ProgressLogger(verbose)] if verbose else []
        callback_list = callbacks_module.CallbackList(
            [*(callbacks or []), *extra, history],
            self,
            {"epochs": epochs, "steps": steps, "verbose": verbose},
        )
        self.stop_training = False
        logs: dict[str, float] = {}
        callback_list.on_train_begin(logs)
        for epoch in range(initial_epoch, epochs):
            callback_list.on_epoch_begin(epoch, {})
            totals: dict[str, float] = {}
            seen = 0
            for batch, index in enumerate(self._batches(n_samples, batch_size, shuffle)):
                callback_list.on_train_batch_begin(batch, {})
                batch_ys = [a[index] for a in ys]
                losses, penalty, preds = self._train_step([a[index] for a in xs], batch_ys)
                size = len(batch_ys[0])
                for key, value in self._batch_logs(losses, batch_ys, preds, penalty).items():
                    totals[key] = totals.get(key, 0.0) + value * size
                seen += size
                running = {key: total / seen for key, total in totals.items()}
                callback_list.on_train_batch_end(batch, running)
                if not math.isfinite(running["loss"]):
                    warnings.warn(
                        f"Training stopped: the loss became {sum(losses)} at epoch {epoch + 1}, "
                        f"batch {batch + 1} (of {steps}). Try a lower learning rate or check the "
                        "inputs for NaN/inf values.",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    self.stop_training = True
                if self.stop_training:
                    break
            logs = {key: total / seen for key, total in totals.items()}
            if validation is not None and math.isfinite(logs["loss"]):
                val_logs = self._evaluate_lists(*validation, batch_size)
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
            raise ValueError(
                f"batch_size must be a positive integer. Received: batch_size={batch_size!r}"
            )
        return int(batch_size)

    @staticmethod
    def _batches(n_samples: int, batch_size: int, shuffle: bool) -> Iterator[np.ndarray | slice]:
        if not shuffle:  # slices are views: no copy of the batch
            for start in range(0, n_samples, batch_size):
                yield slice(start, min(start + batch_size, n_samples))
            return
        order = el_random.generator().permutation(n_samples)
        for start in range(0, n_samples, batch_size):
            yield order[start : start + batch_size]

    # ----------------------------------------------------------------- evaluate / predict
    def _evaluate_lists(
        self, xs: list[np.ndarray], ys: list[np.ndarray], batch_size: int
    ) -> dict[str, float]:
        totals: dict[str, float] = {}
        n_samples = len(xs[0])
        penalty = self._penalty()
        for index in self._batches(n_samples, batch_size, shuffle=False):
            batch_ys = [a[index] for a in ys]
            preds = self._predict_lists([a[index] for a in xs])
            losses = [t.item() for t in self._loss_terms(batch_ys, [Tensor(p) for p in preds])]
            size = len(batch_ys[0])
            for key, value in self._batch_logs(losses, batch_ys, preds, penalty).items():
                totals[key] = totals.get(key, 0.0) + value * size
        return {key: total / n_samples for key, total in totals.items()}

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
        xs, ys = self._check_data(x, y)
        logs = self._evaluate_lists(xs, ys, batch_size)
        if callbacks_module.resolve_verbose(verbose):
            print(callbacks_module.format_logs(logs))
        return self._format_result(logs, return_dict)

    def predict(self, x: Any, batch_size: int | None = None, verbose: int | str = 0) -> Any:
        """Outputs for ``x``, computed in batches without recording gradients."""
        return self._predict_batches(x, batch_size, self._predict_lists)

    def _predict_batches(
        self, x: Any, batch_size: int | None, run: Callable[[list[np.ndarray]], list[np.ndarray]]
    ) -> Any:
        """``predict``'s checks and batching around ``run`` (one batch's input arrays to its
        output arrays), shared with the predictors of ``edgelearn.runtime``."""
        batch_size = self._check_batch_size(batch_size)
        xs = self._inputs_list(x)
        if len(xs[0]) == 0:
            raise ValueError("predict() received an empty x")
        self._check_inputs(xs)
        batches = [
            run([a[index] for a in xs])
            for index in self._batches(len(xs[0]), batch_size, shuffle=False)
        ]
        outputs = [np.concatenate(parts) for parts in zip(*batches)]
        return outputs[0] if len(outputs) == 1 else outputs

    # ----------------------------------------------------------------- summary
    def summary(self, print_fn: Callable[[str], None] = print, line_length: int = 80) -> None:
        """Print a Keras-style table of layers, output shapes and parameter counts."""
        rows = [("Layer (type)", "Output Shape", "Param #", "Connected to")]
        for layer, shape, connected in self._summary_rows():
            rows.append(
                (
                    f"{layer.name} ({type(layer).__name__})",
                    str(shape),
                    f"{layer.count_params():,}",
                    connected,
                )
            )
        show_connections = any(row[3] for row in rows[1:])
        if show_connections:
            line_length = max(line_length, 100)
        widths = [int(line_length * 0.40), int(line_length * 0.27), int(line_length * 0.13)]
        print_fn(f'Model: "{self.name}"')
        print_fn("_" * line_length)
        for i, (name, shape, params, connected) in enumerate(rows):
            line = f" {name:<{widths[0] - 1}}{shape:<{widths[1]}}{params:>{widths[2]}}"
            if show_connections:
                line += f"  {connected}"
            print_fn(line)
            print_fn("=" * line_length if i in (0, len(rows) - 1) else "")
        trainable = sum(w.size for w in self.trainable_weights)
        total = self.count_params()
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {total - trainable:,}")

    def _summary_rows(self) -> list[tuple[Layer, Any, str]]:
        raise NotImplementedError
