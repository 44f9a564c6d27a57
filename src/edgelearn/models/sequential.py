"""Sequential: a plain stack of layers, each feeding the next.

Example:
    >>> import edgelearn as el
    >>> model = el.Sequential(
    ...     [el.layers.Input((28, 28, 1)), el.layers.Conv2D(8, 5), el.layers.Flatten()]
    ... )
    >>> model.output_shape
    (None, 4608)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from edgelearn.engine import Tensor, is_grad_enabled
from edgelearn.layers import InputLayer, Layer, deserialize, serialize
from edgelearn.layers.base import Shape, unique_name
from edgelearn.layers.graph import KerasTensor
from edgelearn.models import folding
from edgelearn.models.training import Model


class Sequential(Model):
    """A model whose layers run one after the other.

    The input shape comes from an ``Input`` first item, from ``input_shape=`` on the first layer,
    or, failing both, from the first data the model sees.
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
    def input_shapes(self) -> list[Shape]:
        return [self._input_layer.batch_input_shape] if self._input_layer else []

    @property
    def output_shapes(self) -> list[Shape]:
        return [self._shapes[-1]] if self._shapes else []

    @property
    def input_names(self) -> list[str]:
        return [self._input_layer.name] if self._input_layer else []

    @property
    def output_names(self) -> list[str]:
        return [self._layers[-1].name] if self._layers else ["output"]

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
            raise ValueError(
                f"All layers in a Sequential model need unique names; '{layer.name}' is taken"
            )
        self._layers.append(layer)
        if self._shapes:
            self._build_layer(layer, self._shapes[-1])

    def _build_layer(self, layer: Layer, input_shape: Shape) -> None:
        layer._build_for(input_shape)
        self._shapes.append(tuple(layer.compute_output_shape(input_shape)))

    def build(self, input_shape: Shape) -> None:
        """Build every layer for inputs of ``input_shape`` (batch axis included)."""
        self._input_layer = InputLayer(batch_shape=tuple(input_shape))
        self._shapes = [self._input_layer.batch_input_shape]
        for layer in self._layers:
            self._build_layer(layer, self._shapes[-1])

    def build_from_data(self, xs: list[np.ndarray]) -> None:
        if not self._layers:
            raise ValueError(f"Sequential model '{self.name}' has no layers")
        self.build((None, *xs[0].shape[1:]))

    def forward(self, inputs: list[Tensor], training: bool = False) -> list[Tensor]:
        outputs = inputs[0]
        # At inference, batch normalisations (and a ReLU after them) right after a convolution
        # run inside it.
        for layer, norm, clip in self._steps(not training and not is_grad_enabled()):
            if norm is None:
                outputs = layer.call(outputs, training=training)
            else:
                outputs = folding.call_folded(layer, norm, outputs, clip)
        return [outputs]

    def _steps(self, fold: bool) -> Iterator[tuple[Layer, Layer | None, Any]]:
        """The layers to run, ``(layer, norm, clip)``: with ``fold``, a convolution with the
        BatchNormalization folded into it (``norm``) and the clip bounds of a ReLU after that
        (or None), the two left out of the steps; otherwise, and for every other layer,
        ``(layer, None, None)``."""
        layers = self._layers + [None, None]
        step = 0
        while step < len(self._layers):
            layer, norm, after = layers[step : step + 3]
            if fold and folding.can_fold(layer, norm, rank=4):
                clip = folding.clip_bounds(after)
                yield layer, norm, clip
                step += 2 if clip is None else 3
            else:
                yield layer, None, None
                step += 1

    def _summary_rows(self):
        shapes = self._shapes[1:] or ["?"] * len(self._layers)
        return [(layer, shape, "") for layer, shape in zip(self._layers, shapes)]

    def get_config(self) -> dict[str, Any]:
        layers = [serialize(layer) for layer in self._layers]
        if self._input_layer is not None:
            layers.insert(0, serialize(self._input_layer))
        return {"name": self.name, "layers": layers}

    @classmethod
    def from_config(cls, config: dict[str, Any] | list[Any]) -> Sequential:
        if isinstance(config, list):  # Keras 2.0 stored the bare list of layers
            config = {"layers": config}
        return cls([deserialize(layer) for layer in config["layers"]], name=config.get("name"))
