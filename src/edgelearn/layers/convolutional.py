"""Convolution layers (NHWC, Keras kernel layout (kh, kw, in, out)).

Example:
    >>> import numpy as np
    >>> import edgelearn as el
    >>> el.layers.Conv2D(8, 5, activation="relu")(np.zeros((1, 28, 28, 1), dtype=np.float32)).shape
    (1, 24, 24, 8)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgelearn import activations, initializers
from edgelearn.engine import Tensor, jit, kernels
from edgelearn.engine import functions as F
from edgelearn.layers.base import Layer, normalize_tuple, register
from edgelearn.layers.core import _no_regularizers


def check_padding(layer: str, padding: str) -> str:
    padding = padding.lower() if isinstance(padding, str) else padding
    if padding not in ("valid", "same"):
        raise ValueError(
            f"{layer} expects padding 'valid' or 'same'. Received: padding={padding!r}"
        )
    return padding


def check_data_format(layer: str, data_format: str | None) -> str:
    if data_format not in (None, "channels_last"):
        raise ValueError(
            f"{layer} supports data_format='channels_last' (NHWC) only. "
            f"Received: data_format={data_format!r}"
        )
    return "channels_last"


def _check_filters(layer: str, filters: Any) -> int:
    if not isinstance(filters, (int, np.integer)) or filters <= 0:
        raise ValueError(
            f"{layer} expects a positive integer number of filters. Received: filters={filters!r}"
        )
    return int(filters)


def _check_depth_multiplier(layer: str, depth_multiplier: Any) -> int:
    if not isinstance(depth_multiplier, (int, np.integer)) or depth_multiplier <= 0:
        raise ValueError(
            f"{layer} expects a positive integer depth_multiplier. "
            f"Received: depth_multiplier={depth_multiplier!r}"
        )
    return int(depth_multiplier)


def _check_output_padding(strides: tuple[int, int], output_padding: Any) -> tuple[int, int] | None:
    """None, or an int / pair of ints each in [0, stride), the range TensorFlow and Keras 2
    accept: a larger one would add whole strides that no input pixel reaches."""
    if output_padding is None:
        return None
    is_int = isinstance(output_padding, (int, np.integer))
    values = (output_padding,) * 2 if is_int else tuple(output_padding)
    if len(values) != 2 or not all(
        isinstance(p, (int, np.integer)) and 0 <= p < s for p, s in zip(values, strides)
    ):
        raise ValueError(
            "Conv2DTranspose expects output_padding to be None or non-negative ints smaller than "
            f"the strides {strides}. Received: output_padding={output_padding!r}"
        )
    return (int(values[0]), int(values[1]))


class _BaseConv2D(Layer):
    """What every 2-D convolution shares: window arguments, activation, bias, input checks.

    Subclasses name their kernel (whose axis 2 is the input channels) in ``_kernel_weight`` and
    define ``_output_channels``.
    """

    samplewise = True

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int],
        padding: str,
        data_format: str | None,
        dilation_rate: int | tuple[int, int],
        activation: Any,
        use_bias: bool,
        bias_initializer: Any,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        layer = type(self).__name__
        self.kernel_size = normalize_tuple(kernel_size, 2, "kernel_size", layer)
        self.strides = normalize_tuple(strides, 2, "strides", layer)
        self.padding = check_padding(layer, padding)
        self.data_format = check_data_format(layer, data_format)
        self.dilation_rate = normalize_tuple(dilation_rate, 2, "dilation_rate", layer)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.bias_initializer = initializers.get(bias_initializer)

    def _check_no_dilation(self, dilation_rate: Any) -> None:
        if self.dilation_rate != (1, 1):
            raise ValueError(
                f"{type(self).__name__} supports dilation_rate=1 only. "
                f"Received: dilation_rate={dilation_rate!r}"
            )

    def check_input_shape(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise self.input_error("4-D input (batch, height, width, channels)", input_shape)
        if self.built and input_shape[-1] != self._kernel_weight.shape[2]:
            raise self.input_error(f"{self._kernel_weight.shape[2]} input channels", input_shape)
        if self.padding == "valid":
            for size, k in zip(input_shape[1:3], self.kernel_size):
                if size is not None and size < k:
                    raise self.input_error(
                        f"height and width of at least {self.kernel_size} with padding='valid'",
                        input_shape,
                    )

    @property
    def _kernel_weight(self) -> Any:
        raise NotImplementedError

    def _output_channels(self, input_channels: int) -> int:
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        out = [
            None if size is None else kernels.output_length(size, k, s, self.padding)
            for size, k, s in zip((h, w), self.kernel_size, self.strides)
        ]
        return (n, out[0], out[1], self._output_channels(c))

    def _bias_weight(self, size: int) -> Any:
        return self.add_weight("bias", (size,), self.bias_initializer) if self.use_bias else None

    def _folded_bias(self, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """The bias of this layer followed by ``* scale + shift`` (see ``call_folded``)."""
        return shift if self.bias is None else self.bias.data * scale + shift

    def _window_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": list(self.dilation_rate),
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "activity_regularizer": None,
            "bias_constraint": None,
        }


@register
class Conv2D(_BaseConv2D):
    """2-D convolution: ``activation(conv2d(inputs, kernel) + bias)``."""

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = (1, 1),
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: int | tuple[int, int] = (1, 1),
        groups: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ):
        super().__init__(
            kernel_size,
            strides,
            padding,
            data_format,
            dilation_rate,
            activation,
            use_bias,
            bias_initializer,
            **kwargs,
        )
        self.filters = _check_filters("Conv2D", filters)
        if self.dilation_rate != (1, 1) or groups != 1:
            raise ValueError(
                "Conv2D supports dilation_rate=1 and groups=1 only. "
                f"Received: dilation_rate={dilation_rate!r}, groups={groups!r}"
            )
        _no_regularizers(
            "Conv2D",
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
        )
        self.set_weight_regularizers(kernel=kernel_regularizer, bias=bias_regularizer)
        self.kernel_initializer = initializers.get(kernel_initializer)

    @property
    def _kernel_weight(self):
        return self.kernel

    def _output_channels(self, input_channels):
        return self.filters

    def build(self, input_shape):
        shape = (*self.kernel_size, input_shape[-1], self.filters)
        self.kernel = self.add_weight("kernel", shape, self.kernel_initializer)
        self.bias = self._bias_weight(self.filters)
        self.built = True

    def call(self, inputs, training=False):
        outputs = F.Conv2D.apply(
            inputs, self.kernel, self.bias, strides=self.strides, padding=self.padding
        )
        return self.activation(outputs)

    def folded_weights(self, scale: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, Any]:
        """The kernel and bias of this layer followed by ``* scale + shift`` per output channel
        (a batch normalisation at inference), for :meth:`call_folded`."""
        return self.kernel.data * scale, self._folded_bias(scale, shift)

    def call_folded(self, inputs, kernel, bias, clip=None) -> Tensor:
        """``call`` with the ``kernel`` and ``bias`` of :meth:`folded_weights` and, if given, a
        clip to ``clip = (low, high)`` (a ReLU) applied with the bias in one pass. Inference
        only; for a linear activation (see :mod:`edgelearn.models.folding`)."""
        if clip is None:
            return F.Conv2D.apply(inputs, kernel, bias, strides=self.strides, padding=self.padding)
        outputs = F.Conv2D.apply(inputs, kernel, None, strides=self.strides, padding=self.padding)
        _clip_in_place(outputs, bias, clip)
        return outputs

    def get_config(self):
        return {
            **self._window_config(),
            "filters": self.filters,
            "groups": 1,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "kernel_constraint": None,
        }


def _clip_in_place(outputs: Tensor, bias: np.ndarray, clip: tuple[float, float]) -> None:
    if outputs.requires_grad:  # an in-place clip would hide from the graph
        raise RuntimeError("call_folded with a clip runs at inference only (under no_grad)")
    kernels.bias_clip_(outputs.data, bias.astype(outputs.dtype, copy=False), *clip)


@register
class DepthwiseConv2D(_BaseConv2D):
    """Depthwise 2-D convolution: each input channel is convolved with its own
    ``depth_multiplier`` filters, giving ``channels * depth_multiplier`` outputs.

    Example:
        >>> import numpy as np
        >>> import edgelearn as el
        >>> layer = el.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")
        >>> layer(np.zeros((1, 8, 8, 4), dtype=np.float32)).shape, layer.depthwise_kernel.shape
        ((1, 8, 8, 8), (3, 3, 4, 2))
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = (1, 1),
        padding: str = "valid",
        depth_multiplier: int = 1,
        data_format: str | None = None,
        dilation_rate: int | tuple[int, int] = (1, 1),
        activation: Any = None,
        use_bias: bool = True,
        depthwise_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        depthwise_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        depthwise_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ):
        super().__init__(
            kernel_size,
            strides,
            padding,
            data_format,
            dilation_rate,
            activation,
            use_bias,
            bias_initializer,
            **kwargs,
        )
        self._check_no_dilation(dilation_rate)
        self.depth_multiplier = _check_depth_multiplier("DepthwiseConv2D", depth_multiplier)
        _no_regularizers(
            "DepthwiseConv2D",
            activity_regularizer=activity_regularizer,
            depthwise_constraint=depthwise_constraint,
            bias_constraint=bias_constraint,
        )
        self.set_weight_regularizers(depthwise=depthwise_regularizer, bias=bias_regularizer)
        self.depthwise_initializer = initializers.get(depthwise_initializer)

    @property
    def _kernel_weight(self):
        return self.depthwise_kernel

    def _output_channels(self, input_channels):
        return input_channels * self.depth_multiplier

    def build(self, input_shape):
        channels = input_shape[-1]
        shape = (*self.kernel_size, channels, self.depth_multiplier)
        self.depthwise_kernel = self.add_weight(
            "depthwise_kernel", shape, self.depthwise_initializer
        )
        self.bias = self._bias_weight(channels * self.depth_multiplier)
        self.built = True

    def call(self, inputs, training=False):
        outputs = F.DepthwiseConv2D.apply(
            inputs, self.depthwise_kernel, self.bias, strides=self.strides, padding=self.padding
        )
        return self.activation(outputs)

    def folded_weights(self, scale: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, Any]:
        """As :meth:`Conv2D.folded_weights`; output channel ``c * M + m`` scales filter ``m`` of
        channel ``c``."""
        kernel = self.depthwise_kernel.data
        return kernel * scale.reshape(kernel.shape[2:]), self._folded_bias(scale, shift)

    def fused_inference(self, x: np.ndarray, kernel, bias, clip, pads=None) -> np.ndarray | None:
        """The numba kernels' one pass (depth multiplier 1) of :meth:`call_folded` with a clip
        over the unpadded array ``x``, or None where they are not in use."""
        step = self.fused_inference_step(x.shape, x.dtype, kernel, bias, clip, pads)
        return None if step is None else step(x)

    def fused_inference_step(
        self, input_shape, dtype, kernel, bias, clip, pads=None
    ) -> Callable[[np.ndarray], np.ndarray] | None:
        """:meth:`fused_inference` for inputs of ``input_shape`` and ``dtype`` as a function of
        the input alone, its weights prepared once (None where the numba kernels are not in
        use)."""
        n, h, w, channels = input_shape
        extra = ((0, 0), (0, 0)) if pads is None else pads
        height, width = h + sum(extra[0]), w + sum(extra[1])
        out_hw = tuple(
            kernels.output_length(size, k, s, self.padding)
            for size, k, s in zip((height, width), self.kernel_size, self.strides)
        )
        if not jit.enabled(n * out_hw[0] * out_hw[1] * channels):
            return None
        own = kernels.pad_amounts(height, width, self.kernel_size, self.strides, self.padding)
        offsets = ((extra[0][0] + own[0][0], 0), (extra[1][0] + own[1][0], 0))
        return jit.depthwise_inference_step(
            kernel, bias, self.strides, offsets, out_hw, *clip, dtype
        )

    def call_folded(self, inputs, kernel, bias, clip=None, pads=None) -> Tensor:
        """As :meth:`Conv2D.call_folded`. ``pads``: ``((top, bottom), (left, right))`` zeros
        around ``inputs`` first (a ZeroPadding2D before this layer). With one filter per channel
        and a clip, the numba kernels (where in use) do it all in one pass over the unpadded
        input."""
        fused = clip is not None and self.depth_multiplier == 1 and not inputs.requires_grad
        if fused:
            out = self.fused_inference(inputs.data, kernel, bias, clip, pads)
            if out is not None:
                return Tensor(out)
        if pads is not None:
            inputs = F.Pad2D.apply(inputs, padding=pads)
        if clip is None:
            return F.DepthwiseConv2D.apply(
                inputs, kernel, bias, strides=self.strides, padding=self.padding
            )
        outputs = F.DepthwiseConv2D.apply(
            inputs, kernel, None, strides=self.strides, padding=self.padding
        )
        _clip_in_place(outputs, bias, clip)
        return outputs

    def get_config(self):
        return {
            **self._window_config(),
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
            "depthwise_constraint": None,
        }


@register
class SeparableConv2D(_BaseConv2D):
    """Depthwise convolution followed by a 1x1 (pointwise) convolution to ``filters`` channels.

    Example:
        >>> import numpy as np
        >>> import edgelearn as el
        >>> layer = el.layers.SeparableConv2D(16, 3, depth_multiplier=2)
        >>> layer(np.zeros((1, 8, 8, 4), dtype=np.float32)).shape
        (1, 6, 6, 16)
        >>> [w.shape for w in layer.weights]
        [(3, 3, 4, 2), (1, 1, 8, 16), (16,)]
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = (1, 1),
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: int | tuple[int, int] = (1, 1),
        depth_multiplier: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        depthwise_initializer: Any = "glorot_uniform",
        pointwise_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        depthwise_regularizer: Any = None,
        pointwise_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        depthwise_constraint: Any = None,
        pointwise_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ):
        super().__init__(
            kernel_size,
            strides,
            padding,
            data_format,
            dilation_rate,
            activation,
            use_bias,
            bias_initializer,
            **kwargs,
        )
        self.filters = _check_filters("SeparableConv2D", filters)
        self._check_no_dilation(dilation_rate)
        self.depth_multiplier = _check_depth_multiplier("SeparableConv2D", depth_multiplier)
        self.set_weight_regularizers(
            depthwise=depthwise_regularizer,
            pointwise=pointwise_regularizer,
            bias=bias_regularizer,
        )
        _no_regularizers(
            "SeparableConv2D",
            activity_regularizer=activity_regularizer,
            depthwise_constraint=depthwise_constraint,
            pointwise_constraint=pointwise_constraint,
            bias_constraint=bias_constraint,
        )
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.pointwise_initializer = initializers.get(pointwise_initializer)

    @property
    def _kernel_weight(self):
        return self.depthwise_kernel

    def _output_channels(self, input_channels):
        return self.filters

    def build(self, input_shape):
        channels = input_shape[-1]
        self.depthwise_kernel = self.add_weight(
            "depthwise_kernel",
            (*self.kernel_size, channels, self.depth_multiplier),
            self.depthwise_initializer,
        )
        self.pointwise_kernel = self.add_weight(
            "pointwise_kernel",
            (1, 1, channels * self.depth_multiplier, self.filters),
            self.pointwise_initializer,
        )
        self.bias = self._bias_weight(self.filters)
        self.built = True

    def call(self, inputs, training=False):
        depthwise = F.DepthwiseConv2D.apply(
            inputs, self.depthwise_kernel, None, strides=self.strides, padding=self.padding
        )
        return self.activation(F.Conv2D.apply(depthwise, self.pointwise_kernel, self.bias))

    def get_config(self):
        return {
            **self._window_config(),
            "filters": self.filters,
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
            "pointwise_initializer": initializers.serialize(self.pointwise_initializer),
            "depthwise_constraint": None,
            "pointwise_constraint": None,
        }


@register
class Conv2DTranspose(_BaseConv2D):
    """Transposed 2-D convolution (the gradient of Conv2D w.r.t. its input), for upsampling.

    The kernel has Keras' transposed layout (kh, kw, filters, input channels). With
    ``output_padding=None`` each side grows to ``size * stride`` ('same') or
    ``size * stride + max(kernel - stride, 0)`` ('valid'); an ``output_padding`` p (< stride)
    gives ``(size - 1) * stride + kernel - 2 * (kernel // 2 if 'same' else 0) + p``.

    Example:
        >>> import numpy as np
        >>> import edgelearn as el
        >>> layer = el.layers.Conv2DTranspose(4, 3, strides=2, padding="same")
        >>> layer(np.zeros((1, 5, 5, 8), dtype=np.float32)).shape, layer.kernel.shape
        ((1, 10, 10, 4), (3, 3, 4, 8))
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = (1, 1),
        padding: str = "valid",
        output_padding: int | tuple[int, int] | None = None,
        data_format: str | None = None,
        dilation_rate: int | tuple[int, int] = (1, 1),
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ):
        super().__init__(
            kernel_size,
            strides,
            padding,
            data_format,
            dilation_rate,
            activation,
            use_bias,
            bias_initializer,
            **kwargs,
        )
        self.filters = _check_filters("Conv2DTranspose", filters)
        self._check_no_dilation(dilation_rate)
        self.output_padding = _check_output_padding(self.strides, output_padding)
        _no_regularizers(
            "Conv2DTranspose",
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
        )
        self.set_weight_regularizers(kernel=kernel_regularizer, bias=bias_regularizer)
        self.kernel_initializer = initializers.get(kernel_initializer)

    def check_input_shape(self, input_shape):
        # Any input size works: a transposed convolution only grows its input.
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise self.input_error("4-D input (batch, height, width, channels)", input_shape)
        if self.built and input_shape[-1] != self.kernel.shape[3]:
            raise self.input_error(f"{self.kernel.shape[3]} input channels", input_shape)

    def build(self, input_shape):
        shape = (*self.kernel_size, self.filters, input_shape[-1])
        self.kernel = self.add_weight("kernel", shape, self.kernel_initializer)
        self.bias = self._bias_weight(self.filters)
        self.built = True

    def call(self, inputs, training=False):
        outputs = F.Conv2DTranspose.apply(
            inputs,
            self.kernel,
            self.bias,
            strides=self.strides,
            padding=self.padding,
            output_padding=self.output_padding,
        )
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        output_padding = self.output_padding or (None, None)
        out = [
            None if size is None else kernels.transpose_output_length(size, k, s, self.padding, p)
            for size, k, s, p in zip((h, w), self.kernel_size, self.strides, output_padding)
        ]
        return (n, out[0], out[1], self.filters)

    def get_config(self):
        return {
            **self._window_config(),
            "filters": self.filters,
            "output_padding": None if self.output_padding is None else list(self.output_padding),
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "kernel_constraint": None,
        }
