"""Functional models: ``el.Model(inputs, outputs)`` over a graph of layer calls.

Layers called on ``el.layers.Input`` tensors record nodes (see :mod:`edgelearn.layers.graph`);
a Functional model walks them back from its outputs once, keeps them in topological order and
runs them in that order. Models may have several inputs and outputs and share layers. The config
is the Keras JSON that Keras 2 and TensorFlow.js write (``inbound_nodes`` as
``[layer_name, node_index, tensor_index, kwargs]``); Keras 3's form is read too.

Example:
    >>> import numpy as np
    >>> import edgelearn as el
    >>> inputs = el.layers.Input((4,))
    >>> hidden = el.layers.Dense(8, activation="relu")(inputs)
    >>> model = el.Model(inputs, el.layers.Dense(2, activation="softmax")(hidden))
    >>> model.predict(np.zeros((3, 4))).shape
    (3, 2)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from edgelearn.engine import Tensor, is_grad_enabled
from edgelearn.layers import InputLayer, Layer, deserialize, serialize
from edgelearn.layers.base import Shape, unique_name
from edgelearn.layers.graph import KerasTensor, Node
from edgelearn.models import folding
from edgelearn.models.training import Model

# Call arguments Keras records in inbound nodes that do not change what a layer computes here.
_IGNORED_CALL_KWARGS = {"training", "mask"}


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


class Functional(Model):
    """A model defined by its input and output KerasTensors."""

    def __init__(self, inputs: Any, outputs: Any, name: str | None = None):
        super().__init__(name=name or unique_name("model"))
        self.inputs: list[KerasTensor] = _as_list(inputs)
        self.outputs: list[KerasTensor] = _as_list(outputs)
        for argument, tensors in (("inputs", self.inputs), ("outputs", self.outputs)):
            for tensor in tensors:
                if not isinstance(tensor, KerasTensor):
                    raise TypeError(
                        f"Model {argument} must be symbolic tensors from el.layers.Input and layer "
                        f"calls, received {tensor!r}"
                    )
        for tensor in self.inputs:
            if not isinstance(tensor.node.layer, InputLayer):
                raise ValueError(
                    f"Model inputs must come straight from el.layers.Input; {tensor!r} is the "
                    "output of a layer"
                )
        self._nodes = self._topological_nodes()
        self._folds = self._batch_norm_folds()
        self._released_after = self._last_uses()
        input_layers = [t.node.layer for t in self.inputs]
        others: list[Layer] = []
        for node in self._nodes:
            if node.layer not in others:
                others.append(node.layer)
        self._layers = input_layers + others
        names = [layer.name for layer in self._layers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"All layers in a model need unique names; repeated: {duplicates}")

    def _topological_nodes(self) -> list[Node]:
        """The nodes between inputs and outputs, each after the nodes it depends on."""
        input_ids = {id(t) for t in self.inputs}
        order: list[Node] = []
        done: set[int] = set()
        stack: list[tuple[KerasTensor, bool]] = [(t, False) for t in reversed(self.outputs)]
        while stack:  # iterative depth-first search: deep networks must not hit the recursion limit
            tensor, expanded = stack.pop()
            node = tensor.node
            if id(tensor) in input_ids or id(node) in done:
                continue
            if isinstance(node.layer, InputLayer):
                raise ValueError(
                    f"Graph disconnected: the outputs depend on input '{node.layer.name}', which "
                    f"is not among the model's inputs {[t.name for t in self.inputs]}"
                )
            if expanded:
                done.add(id(node))
                order.append(node)
                continue
            stack.append((tensor, True))
            for parent in reversed(node.input_tensors):
                if id(parent) not in input_ids and id(parent.node) not in done:
                    stack.append((parent, False))
        return order

    # ----------------------------------------------------------------- the Model interface
    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    @property
    def input_shapes(self) -> list[Shape]:
        return [t.shape for t in self.inputs]

    @property
    def output_shapes(self) -> list[Shape]:
        return [t.shape for t in self.outputs]

    @property
    def input_names(self) -> list[str]:
        return [t.node.layer.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.node.layer.name for t in self.outputs]

    def forward(self, inputs: list[Tensor], training: bool = False) -> list[Tensor]:
        values: dict[int, Tensor] = {id(k): v for k, v in zip(self.inputs, inputs)}
        # At inference, batch normalisations right after a convolution run inside it (see
        # edgelearn.models.folding), with the ReLU after them and the padding before them.
        for step, node, fold in self._steps(not training and not is_grad_enabled()):
            if fold is not None:
                source, norm, clip, padding, produced = fold
                x = values[id(source.input_tensors[0])]
                outputs = folding.call_folded(node.layer, norm, x, clip, padding)
                node = produced  # whose outputs these are
            else:
                args = [values[id(t)] for t in node.input_tensors]
                outputs = node.layer.call(
                    args if isinstance(node.inputs, (list, tuple)) else args[0], training=training
                )
            for tensor, value in zip(node.outputs, _as_list(outputs)):
                values[id(tensor)] = value
            # Drop values no later node reads: at inference nothing else holds them, so a deep
            # network keeps a few activations alive instead of all of them.
            for key in self._released_after[step]:
                values.pop(key, None)
        return [values[id(t)] for t in self.outputs]

    def _steps(self, fold: bool) -> Iterator[tuple[int, Node, tuple | None]]:
        """The steps to run, ``(step, node, folded)``: with ``fold``, steps folded into a
        convolution are left out and ``folded`` describes the convolution's folded run (see
        :meth:`_folded_step`); otherwise, and for every other step, ``folded`` is None."""
        folds = self._folds if fold else {}
        inside = {s for steps in folds.values() for s in steps if s is not None}
        for step, node in enumerate(self._nodes):
            if step not in inside:
                yield step, node, (self._folded_step(step) if step in folds else None)

    def _folded_step(self, step: int) -> tuple[Node, Layer, Any, Layer | None, Node]:
        """For the step of a folded convolution (a key of ``_folds``): the node whose input it
        reads (its padding's when that folds too), the normalisation layer, the ReLU's clip
        bounds (or None), the padding layer (or None) and the node whose outputs it produces."""
        norm, relu, pad = (None if s is None else self._nodes[s] for s in self._folds[step])
        source = self._nodes[step] if pad is None else pad
        clip = None if relu is None else folding.clip_bounds(relu.layer)
        produced = norm if relu is None else relu
        return source, norm.layer, clip, None if pad is None else pad.layer, produced

    def _batch_norm_folds(self) -> dict[int, tuple[int, int | None, int | None]]:
        """Steps of convolutions whose output only a foldable batch normalisation reads (see
        :mod:`edgelearn.models.folding`), mapped to the steps of that normalisation, of a
        clipping ReLU that alone reads the normalisation's output (or None), and of a
        ZeroPadding2D whose output only the convolution reads (or None)."""
        readers: dict[int, list[int]] = {}
        for step, node in enumerate(self._nodes):
            for tensor in node.input_tensors:
                readers.setdefault(id(tensor), []).append(step)
        outputs = {id(t) for t in self.outputs}
        steps = {id(node): step for step, node in enumerate(self._nodes)}

        def only_reader(node: Node) -> int | None:
            result = node.outputs[0]
            reading = readers.get(id(result), [])
            if len(node.outputs) != 1 or len(reading) != 1 or id(result) in outputs:
                return None
            return reading[0]

        folds: dict[int, tuple[int, int | None, int | None]] = {}
        for step, node in enumerate(self._nodes):
            norm = only_reader(node)
            if norm is None or not folding.can_fold(
                node.layer, self._nodes[norm].layer, len(node.outputs[0].shape)
            ):
                continue
            relu = only_reader(self._nodes[norm])
            if relu is not None and folding.clip_bounds(self._nodes[relu].layer) is None:
                relu = None
            source = node.input_tensors[0].node
            pad = steps.get(id(source))
            if (
                pad is None
                or only_reader(source) != step
                or not folding.folds_padding(source.layer, node.layer)
            ):
                pad = None
            folds[step] = (norm, relu, pad)
        return folds

    def _last_uses(self) -> list[list[int]]:
        """For each node, the tensors (by id) whose last reader it is, outputs excepted."""
        last: dict[int, int] = {}
        for step, node in enumerate(self._nodes):
            for tensor in node.input_tensors:
                last[id(tensor)] = step
        for step, (_, _, pad) in self._folds.items():
            if pad is not None:  # a folded convolution reads its padding's input itself
                for tensor in self._nodes[pad].input_tensors:
                    last[id(tensor)] = max(last[id(tensor)], step)
        kept = {id(t) for t in self.outputs}
        released: list[list[int]] = [[] for _ in self._nodes]
        for key, step in last.items():
            if key not in kept:
                released[step].append(key)
        return released

    # ----------------------------------------------------------------- config (Keras JSON)
    def _node_index(self, node: Node) -> int:
        """Index of ``node`` among its layer's calls that belong to this model."""
        layer = node.layer
        if isinstance(layer, InputLayer):
            return 0
        in_model = [n for n in layer.inbound_nodes if n in self._nodes]
        return in_model.index(node)

    def _history(self, tensor: KerasTensor) -> list[Any]:
        return [tensor.node.layer.name, self._node_index(tensor.node), tensor.index]

    def get_config(self) -> dict[str, Any]:
        layers = []
        for layer in self._layers:
            nodes = (
                []
                if isinstance(layer, InputLayer)
                else [n for n in layer.inbound_nodes if n in self._nodes]
            )
            layers.append(
                {
                    **serialize(layer),
                    "name": layer.name,
                    "inbound_nodes": [
                        [[*self._history(t), {}] for t in node.input_tensors] for node in nodes
                    ],
                }
            )
        return {
            "name": self.name,
            "layers": layers,
            "input_layers": [self._history(t) for t in self.inputs],
            "output_layers": [self._history(t) for t in self.outputs],
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Functional:
        """Rebuild from the Keras JSON written by Keras 2, Keras 3 or TensorFlow.js."""
        layers: dict[str, Layer] = {}
        pending: list[tuple[Layer, list[list[list[Any]]]]] = []
        for layer_config in config.get("layers", []):
            layer = deserialize(layer_config)
            name = layer_config.get("name", layer.name)
            if name in layers:
                raise ValueError(f"The model config has two layers named '{name}'")
            layers[name] = layer
            nodes = [
                _parse_inbound_node(node, name) for node in layer_config.get("inbound_nodes", [])
            ]
            if not isinstance(layer, InputLayer):
                pending.append((layer, nodes))

        outputs: dict[tuple[str, int, int], KerasTensor] = {
            (name, 0, 0): layer.output
            for name, layer in layers.items()
            if isinstance(layer, InputLayer)
        }
        made = {id(layer): 0 for layer, _ in pending}
        progress = True
        while progress:  # call each layer once all the tensors its next node needs exist
            progress = False
            for layer, nodes in pending:
                while made[id(layer)] < len(nodes):
                    entries = nodes[made[id(layer)]]
                    keys = [
                        (name, node_index, tensor_index)
                        for name, node_index, tensor_index in entries
                    ]
                    missing = [k for k in keys if k[0] not in layers]
                    if missing:
                        raise ValueError(
                            f"Layer '{layer.name}' is connected to unknown layer '{missing[0][0]}'"
                        )
                    if not all(k in outputs for k in keys):
                        break
                    args = [outputs[k] for k in keys]
                    output = layer(args if len(args) > 1 else args[0])
                    outputs[(layer.name, made[id(layer)], 0)] = output
                    made[id(layer)] += 1
                    progress = True
        unresolved = [layer.name for layer, nodes in pending if made[id(layer)] < len(nodes)]
        if unresolved:
            raise ValueError(f"The model config's graph cannot be connected at layers {unresolved}")

        def lookup(entries: Any, what: str) -> list[KerasTensor]:
            if entries and not isinstance(entries[0], (list, tuple)):  # Keras 3: a single entry
                entries = [entries]
            result = []
            for name, node_index, tensor_index in (tuple(e[:3]) for e in entries):
                if (name, node_index, tensor_index) not in outputs:
                    raise ValueError(
                        f"The model config's {what} name unknown tensor "
                        f"{name}[{node_index}][{tensor_index}]"
                    )
                result.append(outputs[(name, node_index, tensor_index)])
            return result

        inputs = lookup(config.get("input_layers", []), "input_layers")
        model_outputs = lookup(config.get("output_layers", []), "output_layers")
        if not inputs or not model_outputs:
            raise ValueError(
                "The model config needs at least one entry in input_layers and in output_layers"
            )
        return cls(
            inputs if len(inputs) > 1 else inputs[0],
            model_outputs if len(model_outputs) > 1 else model_outputs[0],
            name=config.get("name"),
        )

    def _summary_rows(self):
        rows = []
        for layer in self._layers:
            nodes = [n for n in layer.inbound_nodes if n in self._nodes] or layer.inbound_nodes[:1]
            shape = nodes[0].outputs[0].shape if nodes else "?"
            connected = ", ".join(
                f"{t.node.layer.name}[{self._node_index(t.node)}][{t.index}]"
                for node in nodes
                for t in node.input_tensors
            )
            rows.append((layer, shape, connected))
        return rows


def _parse_inbound_node(node: Any, layer_name: str) -> list[list[Any]]:
    """One inbound node as ``[[layer_name, node_index, tensor_index], ...]``, from either the
    Keras 2 / TF.js list form or the Keras 3 ``{"args": ..., "kwargs": ...}`` form."""
    if isinstance(node, dict):  # Keras 3
        kwargs = node.get("kwargs") or {}
        args = node.get("args") or []
        tensors = args[0] if len(args) == 1 and isinstance(args[0], list) else args
        entries = []
        for tensor in tensors:
            history = (
                (tensor.get("config") or {}).get("keras_history")
                if isinstance(tensor, dict)
                else None
            )
            if history is None:
                raise ValueError(
                    f"Layer '{layer_name}' has an inbound node argument "
                    f"that is not a tensor: {tensor!r}"
                )
            entries.append(list(history[:3]))
    else:  # Keras 2 / TF.js: [[name, node_index, tensor_index, kwargs], ...]
        kwargs = {}
        entries = []
        for entry in node:
            entries.append(list(entry[:3]))
            if len(entry) > 3 and entry[3]:
                kwargs.update(entry[3])
    unsupported = sorted(set(kwargs) - _IGNORED_CALL_KWARGS)
    if unsupported:
        raise ValueError(
            f"Layer '{layer_name}' is called with arguments {unsupported} in the model config; "
            "only plain calls are supported"
        )
    return entries
