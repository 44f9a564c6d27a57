"""ONNX export: an edgelearn model as an ONNX graph, for ONNX Runtime and other ONNX tools.

:func:`export` writes the model's inference computation (Dropout is the identity,
BatchNormalization uses its moving statistics) with ``onnx.helper``. The graph keeps edgelearn's
interface, NHWC images in and out, but computes in the NCHW layout that ONNX operators define:

- each 4-D input is transposed to NCHW once, where the first layer that needs it reads it;
- convolutions, pooling, padding and resizing run in NCHW, with Keras kernels (kh, kw, in, out)
  stored as ONNX weights (out, in, kh, kw); a depthwise convolution is a grouped Conv;
- elementwise layers, merges, Concatenate and Softmax stay in whichever layout their inputs are
  in (axes remapped); Flatten, Reshape and Dense on 4-D tensors, whose results depend on the
  order of the values, first transpose back to NHWC, as does every 4-D model output;
- a BatchNormalization that directly follows a convolution or Dense layer (linear activation,
  no other consumer of its output) is folded into that layer's weights and bias;
- TensorFlow's 'same' padding becomes explicit ``pads`` (the extra pixel after), and 'same'
  average pooling does not count the padded pixels (``count_include_pad=0``).

Weights are written as float32 whatever the layers' dtype. onnx is an optional dependency:
``pip install "edgelearn[onnx]"`` installs it with onnxruntime.

Example:
    >>> import numpy as np, edgelearn as el
    >>> from edgelearn.io import onnx as el_onnx
    >>> model = el.Sequential([el.layers.Input((8, 8, 3)), el.layers.Conv2D(4, 3, padding="same"),
    ...                        el.layers.Flatten(), el.layers.Dense(2, activation="softmax")])
    >>> proto = el_onnx.export(model)
    >>> [node.op_type for node in proto.graph.node]
    ['Transpose', 'Conv', 'Transpose', 'Flatten', 'Gemm', 'Softmax']
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

import edgelearn
from edgelearn import activations
from edgelearn.engine import kernels
from edgelearn.layers import (
    Activation,
    Add,
    Average,
    AveragePooling2D,
    BatchNormalization,
    Concatenate,
    Conv2D,
    Conv2DTranspose,
    Dense,
    DepthwiseConv2D,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    InputLayer,
    Layer,
    LeakyReLU,
    Maximum,
    MaxPooling2D,
    Minimum,
    Multiply,
    ReLU,
    Reshape,
    SeparableConv2D,
    Softmax,
    Subtract,
    UpSampling2D,
    ZeroPadding2D,
)
from edgelearn.layers.base import Shape
from edgelearn.models import Functional, Model, Sequential
from edgelearn.utils.files import atomic_write_bytes

if TYPE_CHECKING:
    import onnx

DEFAULT_OPSET = 17
# Opset 13 is the first with the input-tensor forms of Clip, Pad, Resize and Unsqueeze used here.
MIN_OPSET = 13
INSTALL_HINT = 'pip install "edgelearn[onnx]"  (onnx>=1.15 and onnxruntime>=1.17)'

# NHWC axis -> NCHW axis of the same dimension.
_TO_NCHW_AXIS = (0, 2, 3, 1)
_TO_NCHW_PERM = [0, 3, 1, 2]
_TO_NHWC_PERM = [0, 2, 3, 1]


def require(module: str) -> Any:
    """Import an optional dependency (onnx, onnxruntime) or say how to install it.

    Example:
        >>> require("numpy").__name__
        'numpy'
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{module} is needed for ONNX export and inference: {INSTALL_HINT}"
        ) from error


@dataclasses.dataclass(frozen=True)
class _Value:
    """A tensor in the ONNX graph: its name, its Keras (NHWC) shape, and whether a 4-D tensor is
    stored transposed to NCHW."""

    name: str
    shape: Shape
    nchw: bool = False

    @property
    def rank(self) -> int:
        return len(self.shape)

    def onnx_axis(self, axis: int) -> int:
        """The ONNX axis of Keras axis ``axis`` (negative counts from the end, as in Keras)."""
        axis %= self.rank
        return _TO_NCHW_AXIS[axis] if self.nchw else axis


@dataclasses.dataclass
class _Step:
    """One layer call: the keys of its input tensors and of its output tensor."""

    layer: Layer
    inputs: list[Any]
    output: Any
    merge: bool  # called on a list of tensors


class _GraphBuilder:
    """Accumulates nodes and initializers with unique names, and converts layouts on demand."""

    def __init__(self, helper: Any, numpy_helper: Any):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._taken: set[str] = set()
        self._layouts: dict[tuple[str, bool], _Value] = {}

    def name(self, base: str) -> str:
        name, count = base, 0
        while name in self._taken:
            count += 1
            name = f"{base}_{count}"
        self._taken.add(name)
        return name

    def const(self, base: str, array: Any, dtype: Any = np.float32) -> str:
        name = self.name(base)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(array, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], base: str, **attributes: Any) -> str:
        output = self.name(base)
        self.nodes.append(
            self.helper.make_node(
                op_type, inputs, [output], name=self.name(f"{base}/{op_type}"), **attributes
            )
        )
        return output

    def layout(self, value: _Value, nchw: bool) -> _Value:
        """``value`` in the NCHW (``nchw=True``) or NHWC layout; only 4-D tensors have one."""
        if value.rank != 4 or value.nchw == nchw:
            return value
        key = (value.name, nchw)
        if key not in self._layouts:
            perm = _TO_NCHW_PERM if nchw else _TO_NHWC_PERM
            suffix = "nchw" if nchw else "nhwc"
            name = self.op("Transpose", [value.name], f"{value.name}/{suffix}", perm=perm)
            converted = _Value(name, value.shape, nchw)
            self._layouts[key] = converted
            self._layouts[(name, value.nchw)] = value  # converting back is free
        return self._layouts[key]


# ------------------------------------------------------------------------------------ steps
def _steps(model: Model) -> tuple[list[tuple[Any, InputLayer]], list[_Step], list[Any]]:
    """The model as (input key, input layer) pairs, layer calls in running order, output keys."""
    if isinstance(model, Sequential):
        if model._input_layer is None:
            raise ValueError(
                f"Model '{model.name}' has no input shape yet: give it an el.layers.Input (or "
                "input_shape= on its first layer) or build it before exporting"
            )
        if not model.layers:
            raise ValueError(f"Sequential model '{model.name}' has no layers to export")
        steps = [_Step(layer, [i], i + 1, False) for i, layer in enumerate(model.layers)]
        return [(0, model._input_layer)], steps, [len(steps)]
    if isinstance(model, Functional):
        inputs = [(id(t), t.node.layer) for t in model.inputs]
        steps = [
            _Step(
                node.layer,
                [id(t) for t in node.input_tensors],
                id(node.outputs[0]),
                isinstance(node.inputs, (list, tuple)),
            )
            for node in model._nodes
        ]
        return inputs, steps, [id(t) for t in model.outputs]
    raise TypeError(
        f"ONNX export supports Sequential and functional models; received {type(model).__name__}"
    )


def _foldable_batch_norms(steps: list[_Step], outputs: list[Any]) -> dict[int, _Step]:
    """BatchNormalization steps that can be folded into the step producing their input, by the
    index of that step: a convolution or Dense layer with a linear activation, called only once,
    whose output nothing else reads, normalised along its channel axis."""
    consumers: dict[Any, int] = {}
    for step in steps:
        for key in step.inputs:
            consumers[key] = consumers.get(key, 0) + 1
    for key in outputs:
        consumers[key] = consumers.get(key, 0) + 1
    producer = {step.output: index for index, step in enumerate(steps)}
    calls: dict[int, int] = {}
    for step in steps:
        calls[id(step.layer)] = calls.get(id(step.layer), 0) + 1
    folds: dict[int, _Step] = {}
    for step in steps:
        layer = step.layer
        if type(layer) is not BatchNormalization or calls[id(layer)] != 1:
            continue
        index = producer.get(step.inputs[0])
        if index is None or consumers[step.inputs[0]] != 1:
            continue
        source = steps[index].layer
        if type(source) not in _FOLDS_INTO or calls[id(source)] != 1:
            continue
        # The channel axis is the last one: -1, or 3 for the 4-D outputs of convolutions.
        channel = layer.axis == -1 or (layer.axis == 3 and type(source) is not Dense)
        if source.activation is activations.linear and channel:
            folds[index] = step
    return folds


# ------------------------------------------------------------------------------------ helpers
def _weight(variable: Any) -> np.ndarray:
    return np.asarray(variable.data, dtype=np.float64)


def _batch_norm_affine(layer: BatchNormalization) -> tuple[np.ndarray, np.ndarray]:
    """The inference BatchNormalization as ``x * scale + shift`` (float64)."""
    scale = 1 / np.sqrt(_weight(layer.moving_variance) + layer.epsilon)
    if layer.gamma is not None:
        scale = scale * _weight(layer.gamma)
    shift = -_weight(layer.moving_mean) * scale
    if layer.beta is not None:
        shift = shift + _weight(layer.beta)
    return scale, shift


def _window_attributes(
    shape: Shape, kernel: tuple[int, int], strides: tuple[int, int], padding: str
) -> dict[str, Any]:
    """``kernel_shape``, ``strides`` and TF padding as explicit ``pads`` (or SAME_UPPER, which is
    TF's rule too, when the height or width is only known at run time)."""
    attributes: dict[str, Any] = {"kernel_shape": list(kernel), "strides": list(strides)}
    height, width = shape[1], shape[2]
    if padding == "same" and (height is None or width is None):
        attributes["auto_pad"] = "SAME_UPPER"
        return attributes
    (top, bottom), (left, right) = kernels.pad_amounts(height, width, kernel, strides, padding)
    attributes["pads"] = [top, left, bottom, right]
    return attributes


def _supported_names() -> str:
    return ", ".join(sorted(cls.__name__ for cls in _CONVERTERS))


_ACTIVATION_NAMES = ("elu", "leaky_relu", "linear", "relu", "relu6", "sigmoid", "softmax", "tanh")


class _Exporter:
    """Converts the steps of one model into ONNX nodes."""

    def __init__(self, model: Model, onnx_module: Any):
        self.model = model
        self.onnx = onnx_module
        self.graph = _GraphBuilder(onnx_module.helper, onnx_module.numpy_helper)
        # The layer being converted, and the BatchNormalization to fold into it (if any).
        self.layer: Any = None
        self.fold: BatchNormalization | None = None

    # -------------------------------------------------------------- the whole model
    def build(self, opset: int) -> onnx.ModelProto:
        helper, float32 = self.onnx.helper, self.onnx.TensorProto.FLOAT
        inputs, steps, outputs = _steps(self.model)
        folds = _foldable_batch_norms(steps, outputs)
        for step in steps:
            if type(step.layer) not in _CONVERTERS:
                raise ValueError(
                    f"ONNX export does not support layer '{step.layer.name}' "
                    f"({type(step.layer).__name__}). Supported layers: {_supported_names()}"
                )
        values: dict[Any, _Value] = {}
        graph_inputs = []
        for key, layer in inputs:
            name = self.graph.name(layer.name)
            values[key] = _Value(name, layer.batch_input_shape)
            graph_inputs.append(
                helper.make_tensor_value_info(
                    name, float32, self._dims(layer.batch_input_shape, name)
                )
            )
        # Reserved before any node is named, so that outputs keep the model's output names.
        output_names = [self.graph.name(name) for name in self.model.output_names]
        folded = {id(step) for step in folds.values()}
        for index, step in enumerate(steps):
            if id(step) in folded:  # its producer already applied it
                values[step.output] = values[step.inputs[0]]
                continue
            args = [values[key] for key in step.inputs]
            self.layer = step.layer
            self.fold = folds[index].layer if index in folds else None
            convert = _CONVERTERS[type(step.layer)]
            values[step.output] = convert(self, args if step.merge else args[0])
        graph_outputs = self._outputs([values[key] for key in outputs], output_names)
        graph = helper.make_graph(
            self.graph.nodes,
            self.model.name,
            graph_inputs,
            graph_outputs,
            initializer=self.graph.initializers,
        )
        opsets = [helper.make_opsetid("", opset)]
        proto = helper.make_model(
            graph,
            opset_imports=opsets,
            producer_name="edgelearn",
            producer_version=edgelearn.__version__,
            doc_string=f"edgelearn model '{self.model.name}', NHWC inputs and outputs",
        )
        # The oldest IR version that carries this opset: runtimes older than onnx itself load it.
        proto.ir_version = helper.find_min_ir_version_for(opsets)
        return proto

    def _dims(self, shape: Shape, name: str) -> list[Any]:
        # One symbol for every batch axis: Keras models take the same batch on all inputs.
        return [
            ("batch" if axis == 0 else f"{name}_{axis}") if size is None else int(size)
            for axis, size in enumerate(shape)
        ]

    def _outputs(self, values: list[_Value], names: list[str]) -> list[Any]:
        """The graph outputs ``names``, 4-D ones in NHWC."""
        helper = self.onnx.helper
        values = [self.graph.layout(value, nchw=False) for value in values]
        produced = {output: node for node in self.graph.nodes for output in node.output}
        renamed: dict[str, str] = {}
        result = []
        for value, name in zip(values, names):
            node = produced.get(value.name)
            if node is None or value.name in renamed:  # an input, or an output listed twice
                source = renamed.get(value.name, value.name)
                self.graph.nodes.append(helper.make_node("Identity", [source], [name]))
            else:  # the node that computes it writes the output directly
                renamed[value.name] = name
                for other in self.graph.nodes:
                    other.input[:] = [name if i == value.name else i for i in other.input]
                node.output[:] = [name]
            result.append(
                helper.make_tensor_value_info(
                    name, self.onnx.TensorProto.FLOAT, self._dims(value.shape, name)
                )
            )
        return result

    # -------------------------------------------------------------- shared pieces
    def _op(self, op_type: str, inputs: list[str], **attributes: Any) -> str:
        return self.graph.op(op_type, inputs, self.layer.name, **attributes)

    def _const(self, what: str, array: Any, dtype: Any = np.float32) -> str:
        return self.graph.const(f"{self.layer.name}/{what}", array, dtype)

    def _output_shape(self, args: _Value | list[_Value]) -> Shape:
        shapes = [a.shape for a in args] if isinstance(args, list) else args.shape
        return tuple(self.layer.compute_output_shape(shapes))

    def _activation(self, value: _Value, function: Callable[..., Any]) -> _Value:
        name = next((n for n in _ACTIVATION_NAMES if getattr(activations, n) is function), None)
        if name is None:
            raise ValueError(
                f"ONNX export does not support the activation {function!r} of layer "
                f"'{self.layer.name}' ({type(self.layer).__name__}). Supported activations: "
                f"{', '.join(_ACTIVATION_NAMES)}"
            )
        if name == "linear":
            return value
        if name == "softmax":
            output = self._op("Softmax", [value.name], axis=value.onnx_axis(-1))
        elif name == "relu6":
            bounds = [self._const("min", 0.0), self._const("max", 6.0)]
            output = self._op("Clip", [value.name, *bounds])
        elif name == "leaky_relu":  # edgelearn's (and Keras 3's) default slope
            output = self._op("LeakyRelu", [value.name], alpha=0.2)
        elif name == "elu":
            output = self._op("Elu", [value.name], alpha=1.0)
        else:
            op_type = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}[name]
            output = self._op(op_type, [value.name])
        return dataclasses.replace(value, name=output)

    def _folded(
        self, weight: np.ndarray, bias: np.ndarray | None, channel_axis: int
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Weight and bias with the BatchNormalization that follows folded in, if any."""
        if self.fold is None:
            return weight, bias
        scale, shift = _batch_norm_affine(self.fold)
        shape = [1] * weight.ndim
        shape[channel_axis] = -1
        bias = shift if bias is None else bias * scale + shift
        return weight * scale.reshape(shape), bias

    def _conv(
        self,
        value: _Value,
        weight: np.ndarray,
        bias: np.ndarray | None,
        attributes: dict[str, Any],
        op_type: str = "Conv",
        what: str = "kernel",
    ) -> str:
        inputs = [self.graph.layout(value, nchw=True).name, self._const(what, weight)]
        if bias is not None:
            inputs.append(self._const("bias", bias))
        return self._op(op_type, inputs, **attributes)

    def _conv_window(self, value: _Value) -> dict[str, Any]:
        layer = self.layer
        return _window_attributes(value.shape, layer.kernel_size, layer.strides, layer.padding)

    def _finish(self, output: str, shape: Shape, activation: Callable[..., Any]) -> _Value:
        return self._activation(_Value(output, shape, nchw=True), activation)

    # -------------------------------------------------------------- convolutions
    def conv2d(self, value: _Value) -> _Value:
        layer = self.layer
        weight = _weight(layer.kernel).transpose(3, 2, 0, 1)
        bias = None if layer.bias is None else _weight(layer.bias)
        weight, bias = self._folded(weight, bias, channel_axis=0)
        attributes = self._conv_window(value)
        output = self._conv(value, weight, bias, attributes)
        return self._finish(output, self._output_shape(value), layer.activation)

    def _depthwise_weight(self) -> np.ndarray:
        # Keras (kh, kw, C, M): output channel c * M + m reads input channel c, which is the
        # order of ONNX groups of M output channels each.
        kernel = _weight(self.layer.depthwise_kernel)
        kh, kw, channels, multiplier = kernel.shape
        return kernel.reshape(kh, kw, channels * multiplier).transpose(2, 0, 1)[:, None]

    def depthwise_conv2d(self, value: _Value) -> _Value:
        layer = self.layer
        bias = None if layer.bias is None else _weight(layer.bias)
        weight, bias = self._folded(self._depthwise_weight(), bias, channel_axis=0)
        attributes = self._conv_window(value)
        output = self._conv(value, weight, bias, {**attributes, "group": value.shape[3]})
        return self._finish(output, self._output_shape(value), layer.activation)

    def separable_conv2d(self, value: _Value) -> _Value:
        layer = self.layer
        attributes = self._conv_window(value)
        depthwise = self._conv(
            value,
            self._depthwise_weight(),
            None,
            {**attributes, "group": value.shape[3]},
            what="depthwise_kernel",
        )
        pointwise = _weight(layer.pointwise_kernel).transpose(3, 2, 0, 1)
        bias = None if layer.bias is None else _weight(layer.bias)
        pointwise, bias = self._folded(pointwise, bias, channel_axis=0)
        shape = self._output_shape(value)
        output = self._conv(
            _Value(depthwise, shape, nchw=True),
            pointwise,
            bias,
            {"kernel_shape": [1, 1]},
            what="pointwise_kernel",
        )
        return self._finish(output, shape, layer.activation)

    def conv2d_transpose(self, value: _Value) -> _Value:
        layer = self.layer
        # Keras (kh, kw, filters, in) -> ONNX ConvTranspose (in, filters, kh, kw), not flipped.
        weight = _weight(layer.kernel).transpose(3, 2, 0, 1)
        bias = None if layer.bias is None else _weight(layer.bias)
        weight, bias = self._folded(weight, bias, channel_axis=1)
        begin, end, extra = [], [], []
        output_padding = layer.output_padding or (None, None)
        windows = zip(value.shape[1:3], layer.kernel_size, layer.strides, output_padding)
        for size, k, s, p in windows:
            # edgelearn crops the full result ((size - 1) * s + k long) from `start`, or extends
            # it with zeros; neither amount depends on the size, so an unknown one can be 1.
            size = 1 if size is None else size
            full = (size - 1) * s + k
            out = kernels.transpose_output_length(size, k, s, layer.padding, p)
            start = kernels.transpose_crop(size, k, s, out, layer.padding)
            begin.append(start)
            end.append(max(full - start - out, 0))
            extra.append(max(out - (full - start), 0))
        attributes = {
            "kernel_shape": list(layer.kernel_size),
            "strides": list(layer.strides),
            "pads": begin + end,
        }
        if any(extra):
            attributes["output_padding"] = extra
        output = self._conv(value, weight, bias, attributes, op_type="ConvTranspose")
        return self._finish(output, self._output_shape(value), layer.activation)

    # -------------------------------------------------------------- pooling, padding, resizing
    def _pool(self, value: _Value, op_type: str, **extra: Any) -> _Value:
        layer = self.layer
        attributes = _window_attributes(value.shape, layer.pool_size, layer.strides, layer.padding)
        output = self._op(
            op_type, [self.graph.layout(value, nchw=True).name], **attributes, **extra
        )
        return _Value(output, self._output_shape(value), nchw=True)

    def max_pooling2d(self, value: _Value) -> _Value:
        return self._pool(value, "MaxPool")

    def average_pooling2d(self, value: _Value) -> _Value:
        # TF averages 'same' windows over the pixels inside the image only.
        return self._pool(value, "AveragePool", count_include_pad=0)

    def _global_pool(self, value: _Value, op_type: str) -> _Value:
        output = self._op(op_type, [self.graph.layout(value, nchw=True).name])
        if self.layer.keepdims:
            return _Value(output, self._output_shape(value), nchw=True)
        return _Value(self._op("Flatten", [output], axis=1), self._output_shape(value))

    def global_average_pooling2d(self, value: _Value) -> _Value:
        return self._global_pool(value, "GlobalAveragePool")

    def global_max_pooling2d(self, value: _Value) -> _Value:
        return self._global_pool(value, "GlobalMaxPool")

    def zero_padding2d(self, value: _Value) -> _Value:
        (top, bottom), (left, right) = self.layer.padding
        pads = self._const("pads", [0, 0, top, left, 0, 0, bottom, right], np.int64)
        output = self._op("Pad", [self.graph.layout(value, nchw=True).name, pads], mode="constant")
        return _Value(output, self._output_shape(value), nchw=True)

    def up_sampling2d(self, value: _Value) -> _Value:
        layer = self.layer
        scales = self._const("scales", [1.0, 1.0, *layer.size])
        # 'asymmetric': output pixel r samples the input at r / size, as TF.js computes both
        # modes; 'floor' makes nearest repeat each pixel.
        attributes: dict[str, Any] = {"coordinate_transformation_mode": "asymmetric"}
        if layer.interpolation == "nearest":
            attributes.update(mode="nearest", nearest_mode="floor")
        else:
            attributes["mode"] = "linear"
        output = self._op(
            "Resize", [self.graph.layout(value, nchw=True).name, "", scales], **attributes
        )
        return _Value(output, self._output_shape(value), nchw=True)

    # -------------------------------------------------------------- core layers
    def dense(self, value: _Value) -> _Value:
        layer = self.layer
        kernel = _weight(layer.kernel)
        bias = None if layer.bias is None else _weight(layer.bias)
        kernel, bias = self._folded(kernel, bias, channel_axis=1)
        value = self.graph.layout(value, nchw=False)  # Dense reads the NHWC last axis
        shape = self._output_shape(value)
        if value.rank == 2:
            inputs = [value.name, self._const("kernel", kernel)]
            if bias is not None:
                inputs.append(self._const("bias", bias))
            output = self._op("Gemm", inputs)
        else:
            output = self._op("MatMul", [value.name, self._const("kernel", kernel)])
            if bias is not None:
                output = self._op("Add", [output, self._const("bias", bias)])
        return self._activation(_Value(output, shape), layer.activation)

    def activation(self, value: _Value) -> _Value:
        return self._activation(value, self.layer.activation)

    def dropout(self, value: _Value) -> _Value:
        return value

    def flatten(self, value: _Value) -> _Value:
        value = self.graph.layout(value, nchw=False)  # Keras flattens in NHWC order
        return _Value(self._op("Flatten", [value.name], axis=1), self._output_shape(value))

    def reshape(self, value: _Value) -> _Value:
        value = self.graph.layout(value, nchw=False)
        # 0 copies the batch size; the target keeps its -1, if any.
        shape = self._const("shape", [0, *self.layer.target_shape], np.int64)
        return _Value(self._op("Reshape", [value.name, shape]), self._output_shape(value))

    def batch_normalization(self, value: _Value) -> _Value:
        layer = self.layer
        scale, shift = _batch_norm_affine(layer)
        axis = layer.axis % value.rank
        if value.rank == 4 and axis == 3:
            value = self.graph.layout(value, nchw=True)
        shape = self._output_shape(value)
        if value.onnx_axis(axis) == 1:
            gamma = np.ones_like(scale) if layer.gamma is None else _weight(layer.gamma)
            beta = np.zeros_like(scale) if layer.beta is None else _weight(layer.beta)
            inputs = [
                value.name,
                self._const("gamma", gamma),
                self._const("beta", beta),
                self._const("moving_mean", _weight(layer.moving_mean)),
                self._const("moving_variance", _weight(layer.moving_variance)),
            ]
            output = self._op("BatchNormalization", inputs, epsilon=layer.epsilon)
            return dataclasses.replace(value, name=output, shape=shape)
        # Any other axis: ONNX's BatchNormalization normalises axis 1 only.
        broadcast = [1] * value.rank
        broadcast[value.onnx_axis(axis)] = -1
        scaled = self._op("Mul", [value.name, self._const("scale", scale.reshape(broadcast))])
        output = self._op("Add", [scaled, self._const("shift", shift.reshape(broadcast))])
        return dataclasses.replace(value, name=output, shape=shape)

    # -------------------------------------------------------------- activation layers
    def relu(self, value: _Value) -> _Value:
        layer = self.layer
        x = value.name
        if layer.threshold and layer.negative_slope:
            threshold = self._const("threshold", layer.threshold)
            below = self._op("LessOrEqual", [x, threshold])
            shifted = self._op("Sub", [x, threshold])
            low = self._op("Mul", [shifted, self._const("negative_slope", layer.negative_slope)])
            output = self._op("Where", [below, low, x])
        elif layer.threshold:  # x above the threshold, else 0 (a <= threshold gives 0 too)
            output = self._op("ThresholdedRelu", [x], alpha=layer.threshold)
        elif layer.negative_slope:
            output = self._op("LeakyRelu", [x], alpha=layer.negative_slope)
        elif layer.max_value is not None:
            clip = [x, self._const("min", 0.0), self._const("max", layer.max_value)]
            return dataclasses.replace(value, name=self._op("Clip", clip))
        else:
            output = self._op("Relu", [x])
        if layer.max_value is not None:
            output = self._op("Clip", [output, "", self._const("max", layer.max_value)])
        return dataclasses.replace(value, name=output)

    def leaky_relu(self, value: _Value) -> _Value:
        output = self._op("LeakyRelu", [value.name], alpha=self.layer.negative_slope)
        return dataclasses.replace(value, name=output)

    def softmax(self, value: _Value) -> _Value:
        output = self._op("Softmax", [value.name], axis=value.onnx_axis(self.layer.axis))
        return dataclasses.replace(value, name=output)

    # -------------------------------------------------------------- merges
    def _aligned(self, values: list[_Value]) -> list[_Value]:
        """Keras' broadcast alignment: lower-rank inputs gain axes of size 1 after the batch
        axis; 4-D inputs then share one layout, NCHW if any of them is already in it."""
        rank = max(v.rank for v in values)
        aligned = []
        for v in values:
            if v.rank < rank:  # below 4-D, so in Keras order
                missing = rank - v.rank
                axes = self._const("axes", list(range(1, missing + 1)), np.int64)
                v = _Value(
                    self._op("Unsqueeze", [v.name, axes]),
                    (v.shape[0], *(1,) * missing, *v.shape[1:]),
                )
            aligned.append(v)
        nchw = rank == 4 and any(v.nchw for v in aligned)
        return [self.graph.layout(v, nchw) for v in aligned]

    def _merge(self, values: list[_Value], combine: Callable[[list[str]], str]) -> _Value:
        aligned = self._aligned(values)
        output = combine([v.name for v in aligned])
        return _Value(output, self._output_shape(values), aligned[0].nchw)

    def _chain(self, op_type: str, names: list[str]) -> str:
        output = names[0]
        for name in names[1:]:
            output = self._op(op_type, [output, name])
        return output

    def add(self, values: list[_Value]) -> _Value:
        return self._merge(values, lambda names: self._op("Sum", names))

    def subtract(self, values: list[_Value]) -> _Value:
        return self._merge(values, lambda names: self._op("Sub", names))

    def multiply(self, values: list[_Value]) -> _Value:
        return self._merge(values, lambda names: self._chain("Mul", names))

    def average(self, values: list[_Value]) -> _Value:
        def combine(names: list[str]) -> str:
            total = self._op("Sum", names)
            return self._op("Div", [total, self._const("count", float(len(names)))])

        return self._merge(values, combine)

    def maximum(self, values: list[_Value]) -> _Value:
        return self._merge(values, lambda names: self._op("Max", names))

    def minimum(self, values: list[_Value]) -> _Value:
        return self._merge(values, lambda names: self._op("Min", names))

    def concatenate(self, values: list[_Value]) -> _Value:
        aligned = self._aligned(values)
        axis = aligned[0].onnx_axis(self.layer.axis)
        output = self._op("Concat", [v.name for v in aligned], axis=axis)
        return _Value(output, self._output_shape(values), aligned[0].nchw)


_CONVERTERS: dict[type[Layer], Callable[[_Exporter, Any], _Value]] = {
    Activation: _Exporter.activation,
    Add: _Exporter.add,
    Average: _Exporter.average,
    AveragePooling2D: _Exporter.average_pooling2d,
    BatchNormalization: _Exporter.batch_normalization,
    Concatenate: _Exporter.concatenate,
    Conv2D: _Exporter.conv2d,
    Conv2DTranspose: _Exporter.conv2d_transpose,
    Dense: _Exporter.dense,
    DepthwiseConv2D: _Exporter.depthwise_conv2d,
    Dropout: _Exporter.dropout,
    Flatten: _Exporter.flatten,
    GlobalAveragePooling2D: _Exporter.global_average_pooling2d,
    GlobalMaxPooling2D: _Exporter.global_max_pooling2d,
    LeakyReLU: _Exporter.leaky_relu,
    MaxPooling2D: _Exporter.max_pooling2d,
    Maximum: _Exporter.maximum,
    Minimum: _Exporter.minimum,
    Multiply: _Exporter.multiply,
    ReLU: _Exporter.relu,
    Reshape: _Exporter.reshape,
    SeparableConv2D: _Exporter.separable_conv2d,
    Softmax: _Exporter.softmax,
    Subtract: _Exporter.subtract,
    UpSampling2D: _Exporter.up_sampling2d,
    ZeroPadding2D: _Exporter.zero_padding2d,
}
# Layers a following BatchNormalization can be folded into.
_FOLDS_INTO = (Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose, Dense)

#: The layer classes :func:`export` converts.
SUPPORTED_LAYERS = tuple(sorted(cls.__name__ for cls in _CONVERTERS))


def export(
    model: Model, path: str | os.PathLike[str] | None = None, opset: int = DEFAULT_OPSET
) -> onnx.ModelProto:
    """Convert ``model`` to an ONNX model with NHWC inputs and outputs, as ``model.predict`` takes.

    Writes it to ``path`` too, atomically (a temporary file renamed over ``path``), when given.
    ``opset`` is the ONNX operator set, 13 or later. The weights are copied: later training does
    not change the exported model.

    Example:
        >>> import numpy as np, edgelearn as el
        >>> from edgelearn.io import onnx as el_onnx
        >>> inputs = el.layers.Input((4,), name="features")
        >>> model = el.Model(inputs, el.layers.Dense(2, name="scores")(inputs))
        >>> proto = el_onnx.export(model)
        >>> [(i.name, o.name) for i, o in zip(proto.graph.input, proto.graph.output)]
        [('features', 'scores')]
    """
    onnx_module = require("onnx")
    newest = onnx_module.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ValueError(
            f"ONNX export supports opsets {MIN_OPSET} to {newest} (this onnx's newest). "
            f"Received: opset={opset!r}"
        )
    proto = _Exporter(model, onnx_module).build(opset)
    if path is not None:
        atomic_write_bytes(path, proto.SerializeToString())
    return proto


__all__ = ["DEFAULT_OPSET", "SUPPORTED_LAYERS", "export", "require"]
