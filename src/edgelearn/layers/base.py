"""The layer contract, as in Keras 3.

``__init__`` stores the arguments, ``build(input_shape)`` creates the weights, ``call`` computes,
``compute_output_shape`` infers shapes without computing, and ``get_config`` returns the
arguments under the keys Keras writes into its JSON (the on-disk format of saved models).
Layer classes register themselves under their Keras ``class_name``.

Example:
    >>> import numpy as np
    >>> import edgelearn as el
    >>> layer = el.layers.Dense(3)
    >>> layer(np.ones((2, 4), dtype=np.float32)).shape
    (2, 3)
    >>> [w.shape for w in layer.weights]
    [(4, 3), (3,)]
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np

from edgelearn import initializers, regularizers
from edgelearn.engine import Tensor, Variable
from edgelearn.layers.graph import KerasTensor, Node, is_symbolic

Shape = tuple[int | None, ...]

_placeholders = threading.local()


@contextlib.contextmanager
def placeholder_weights() -> Iterator[None]:
    """Create weights as read-only zero-size-in-memory placeholders (broadcast zeros).

    Model readers build a topology inside this block, check its weight shapes against the file,
    and only then replace each placeholder with the array read from the file: a crafted topology
    cannot make them allocate (or spend time initialising) weights the file does not hold.
    """
    previous = getattr(_placeholders, "active", False)
    _placeholders.active = True
    try:
        yield
    finally:
        _placeholders.active = previous


_part = threading.local()


@contextlib.contextmanager
def batch_part(start: int) -> Iterator[None]:
    """Within the block, layers called on this thread run on the samples of a batch from
    ``start`` on: a model's training step split over threads (``edgelearn.engine.threads``)
    runs each part of its batch inside one. A layer that prepared the whole batch in
    :meth:`Layer.start_step` (Dropout's masks) takes its part's rows from here."""
    previous = getattr(_part, "start", 0)
    _part.start = start
    try:
        yield
    finally:
        _part.start = previous


def batch_part_start() -> int:
    """The first sample of the batch part being run on this thread (0 outside a split step)."""
    return getattr(_part, "start", 0)


#: Layer classes by Keras ``class_name``; filled by :func:`register`.
LAYER_CLASSES: dict[str, type[Layer]] = {}
_name_counts: defaultdict[str, int] = defaultdict(int)


def register(cls: type[Layer]) -> type[Layer]:
    """Class decorator: make a layer known to :func:`deserialize` by its Keras class name."""
    LAYER_CLASSES[cls.__name__] = cls
    return cls


def unique_name(base: str) -> str:
    """Keras-style default names: dense, dense_1, dense_2, ..."""
    count = _name_counts[base]
    _name_counts[base] += 1
    return base if count == 0 else f"{base}_{count}"


def snake_case(name: str) -> str:
    """Keras' rule: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def normalize_tuple(value: Any, n: int, argument: str, layer: str) -> tuple[int, ...]:
    """``3`` -> ``(3, 3)``; checks that each entry is a positive int."""
    values = (value,) * n if isinstance(value, (int, np.integer)) else tuple(value)
    if len(values) != n or not all(isinstance(v, (int, np.integer)) and v > 0 for v in values):
        raise ValueError(
            f"{layer} expects {argument} to be a positive int or a tuple of {n} positive ints. "
            f"Received: {argument}={value!r}"
        )
    return tuple(int(v) for v in values)


def dtype_name(dtype: Any) -> str:
    """Accept 'float32', np.float32, or a Keras 3 DTypePolicy dict."""
    if isinstance(dtype, dict):  # Keras 3: {"class_name": "DTypePolicy", "config": {"name": ...}}
        dtype = (dtype.get("config") or {}).get("name", "float32")
    name = np.dtype(dtype or "float32").name
    if name not in ("float32", "float64"):
        raise ValueError(f"Layers compute in float32 or float64. Received: dtype={dtype!r}")
    return name


class Layer:
    """Base class of all layers.

    Args:
        name: unique name; defaults to the snake_case class name with a counter.
        trainable: whether the layer's weights are updated by training.
        dtype: dtype of the weights and of the computation ('float32' or 'float64').
        input_shape / batch_input_shape / batch_size: Keras' way to give the first layer of a
            Sequential model its input shape.
    """

    def __init__(
        self,
        name: str | None = None,
        trainable: bool = True,
        dtype: Any = None,
        input_shape: Shape | None = None,
        batch_input_shape: Shape | None = None,
        batch_size: int | None = None,
        **kwargs: Any,
    ):
        if kwargs:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword argument(s): "
                f"{', '.join(sorted(kwargs))}"
            )
        self.name = name or unique_name(snake_case(type(self).__name__))
        self.dtype = dtype_name(dtype)
        self._trainable = bool(trainable)
        self._weights: list[Variable] = []
        self._regularizers: dict[str, regularizers.Regularizer | None] = {}
        self._penalties: list[tuple[Variable, regularizers.Regularizer]] = []
        self.inbound_nodes: list[Node] = []
        self.built = False
        self.batch_input_shape: Shape | None = None
        if batch_input_shape is not None:
            self.batch_input_shape = tuple(batch_input_shape)
        elif input_shape is not None:
            self.batch_input_shape = (batch_size, *tuple(input_shape))

    # ----------------------------------------------------------------- the contract
    def build(self, input_shape: Shape) -> None:
        """Create the weights for inputs of ``input_shape`` (batch dimension included)."""
        self.built = True

    def call(self, inputs: Tensor, training: bool = False) -> Tensor:
        raise NotImplementedError

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    # Whether call(training=True) treats every sample on its own; see splits_by_sample.
    samplewise = False

    def splits_by_sample(self, training: bool) -> bool:
        """Whether :meth:`call` on a batch gives its calls on the batch's parts, concatenated,
        and changes nothing shared while it runs (no batch statistics, random draws or state
        updates). A model whose every layer says so runs the parts of a large batch through the
        whole model on different threads (:mod:`edgelearn.engine.threads`). Layers say so by
        setting ``samplewise = True`` (or overriding this where it depends on ``training``); a
        layer that does not is never split.
        """
        return self.samplewise

    def start_step(self, n_samples: int) -> None:
        """Called by a model before a training step on ``n_samples`` samples, on the thread
        that runs the step and before its batch splits over threads: a layer that draws random
        numbers in training draws the whole batch's here, so that its draws do not depend on how
        the batch is split (see Dropout). Nothing by default."""

    def end_step(self) -> None:
        """Called after the step: forget what :meth:`start_step` prepared."""

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": self.dtype,
        }
        if self.batch_input_shape is not None:
            config["batch_input_shape"] = list(self.batch_input_shape)
        for weight_name, regularizer in self._regularizers.items():
            config[f"{weight_name}_regularizer"] = regularizers.serialize(regularizer)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)

    # ----------------------------------------------------------------- calling
    def __call__(self, inputs: Any, training: bool = False) -> Any:
        """Run the layer on arrays or Tensors (a list for merge layers); on KerasTensors, record
        the call for the functional API instead."""
        if is_symbolic(inputs):
            return self._call_symbolic(inputs)
        if isinstance(inputs, (list, tuple)):
            tensors: Any = [self._as_tensor(x) for x in inputs]
            shapes: Any = [(None, *t.shape[1:]) for t in tensors]
        else:
            tensors = self._as_tensor(inputs)
            shapes = (None, *tensors.shape[1:])
        self._build_for(shapes)
        return self.call(tensors, training=training)

    def _as_tensor(self, x: Any) -> Tensor:
        if not isinstance(x, Tensor):
            return Tensor(np.asarray(x, dtype=self.dtype))
        if x.dtype != self.dtype and not x.requires_grad:
            return Tensor(x.data.astype(self.dtype))
        return x

    def _build_for(self, input_shape: Any) -> None:
        self.check_input_shape(input_shape)
        if not self.built:
            self.build(input_shape)
            self.built = True

    def _call_symbolic(self, inputs: Any) -> KerasTensor:
        flat = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if not all(isinstance(x, KerasTensor) for x in flat):
            raise TypeError(
                f"Layer '{self.name}' was called on a mix of symbolic Input tensors and arrays; "
                "in a functional model every input must come from el.layers.Input"
            )
        shapes = [x.shape for x in flat] if isinstance(inputs, (list, tuple)) else flat[0].shape
        self._build_for(shapes)
        output = KerasTensor(self.compute_output_shape(shapes), dtype=self.dtype)
        Node(self, inputs, [output])
        return output

    def check_input_shape(self, input_shape: Shape) -> None:
        """Raise a clear ValueError when inputs of this shape cannot go through the layer."""

    def input_error(self, expected: str, input_shape: Shape) -> ValueError:
        received = tuple(input_shape)
        return ValueError(
            f"{type(self).__name__} '{self.name}' expects {expected}, "
            f"received input of shape {received}"
        )

    # ----------------------------------------------------------------- weights
    def set_weight_regularizers(self, **by_weight: Any) -> None:
        """Resolve regularizers (names, dicts or objects) by their Keras config prefix:
        ``kernel=...`` is ``kernel_regularizer`` and applies to the weight ``kernel``;
        ``depthwise=...`` applies to ``depthwise_kernel``. They appear in ``get_config``."""
        for weight_name, identifier in by_weight.items():
            self._regularizers[weight_name] = regularizers.get(identifier)

    def regularization_losses(self) -> list[Tensor]:
        """The penalties of this layer's regularized weights, to add to the training loss."""
        return [regularizer(variable) for variable, regularizer in self._penalties]

    def add_weight(
        self,
        name: str,
        shape: tuple[int, ...],
        initializer: Any = "glorot_uniform",
        trainable: bool = True,
    ) -> Variable:
        resolved = initializers.get(initializer)
        full_name = f"{self.name}/{name}"
        if getattr(_placeholders, "active", False):
            variable = Variable(
                np.zeros((), self.dtype), name=full_name, trainable=trainable and self.trainable
            )
            variable.data = np.broadcast_to(variable.data, tuple(shape))
        else:
            value = resolved(tuple(shape), dtype=self.dtype)
            variable = Variable(value, name=full_name, trainable=trainable and self.trainable)
        variable.trainable = trainable  # the weight's own kind; the layer flag can freeze it
        self._weights.append(variable)
        regularizer = self._regularizers.get(name) or self._regularizers.get(
            name.removesuffix("_kernel")
        )
        if regularizer is not None:
            self._penalties.append((variable, regularizer))
        return variable

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for weight in self._weights:
            weight.requires_grad = self._trainable and weight.trainable

    @property
    def weights(self) -> list[Variable]:
        return list(self._weights)

    @property
    def trainable_weights(self) -> list[Variable]:
        return [w for w in self._weights if w.trainable and self._trainable]

    @property
    def non_trainable_weights(self) -> list[Variable]:
        return [w for w in self._weights if not (w.trainable and self._trainable)]

    def get_weights(self) -> list[np.ndarray]:
        return [w.data.copy() for w in self._weights]

    def set_weights(self, weights: list[Any]) -> None:
        if len(weights) != len(self._weights):
            raise ValueError(
                f"Layer '{self.name}' has {len(self._weights)} weights "
                f"({[w.name for w in self._weights]}), received a list of {len(weights)}"
            )
        arrays = [np.asarray(w) for w in weights]
        for variable, array in zip(self._weights, arrays):  # check everything before writing
            if array.shape != variable.shape:
                raise ValueError(
                    f"Weight '{variable.name}' has shape {variable.shape}, "
                    f"received an array of shape {array.shape}"
                )
        for variable, array in zip(self._weights, arrays):
            variable.assign(array)

    def count_params(self) -> int:
        return int(sum(w.size for w in self._weights))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"
