"""A model's inference as a flat list of steps on arrays, with its batch norms folded once.

``model.predict`` walks the layer graph at every call: Tensors around every array, a graph
node's bookkeeping, the batch normalisations folded into their convolutions afresh (it cannot
know that the weights did not change). :class:`InferencePlan` does that walk once: each step
is a function of arrays with its folded kernel and bias bound, reading and writing numbered
slots, and the slots nothing reads any more are freed after the step that read them last. For
MobileNetV2 at batch 1 that is ~1.5 ms of 8 (benchmarks/README.md). The plan is a snapshot of
the weights: :class:`edgelearn.runtime.Predictor` is its public face.

Example:
    >>> import numpy as np, edgelearn as el
    >>> from edgelearn.models.inference import InferencePlan
    >>> model = el.Sequential([el.layers.Input((8, 8, 3)), el.layers.Conv2D(4, 3),
    ...                        el.layers.BatchNormalization(), el.layers.ReLU(6.0)])
    >>> x = np.ones((2, 8, 8, 3), dtype=np.float32)
    >>> bool(np.allclose(InferencePlan(model).run([x])[0], model.predict(x), atol=1e-6))
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgelearn.engine import Tensor, jit, kernels, threads
from edgelearn.engine import functions as F
from edgelearn.layers import Add, Conv2D, Dense, Layer
from edgelearn.models.functional import Functional
from edgelearn.models.sequential import Sequential
from edgelearn.models.training import Model


@dataclass
class Step:
    """``outputs = run(*inputs)``, slots by number; ``release``: slots read for the last time."""

    run: Callable[..., Any]
    inputs: list[int]
    outputs: list[int]
    release: list[int]


class InferencePlan:
    """The steps of ``model``'s inference (a Sequential or functional model), made once.

    :meth:`run` takes float32 arrays, one per model input, and returns one per output; it
    must run without a recorded graph (``no_grad``), as ``predict`` runs.
    """

    def __init__(self, model: Model):
        self.steps: list[Step] = []
        if isinstance(model, Functional):
            self._plan_functional(model)
        elif isinstance(model, Sequential):
            self._plan_sequential(model)
        else:
            raise TypeError(
                f"InferencePlan expects a Sequential or functional model. Received: {model!r}"
            )

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        slots: list[Any] = [None] * self.n_slots
        for slot, array in zip(self.input_slots, inputs):
            slots[slot] = array
        for step in self.steps:
            results = step.run(*(slots[i] for i in step.inputs))
            if len(step.outputs) == 1:
                slots[step.outputs[0]] = results
            else:
                for slot, result in zip(step.outputs, results):
                    slots[slot] = result
            for slot in step.release:
                slots[slot] = None
        return [slots[i] for i in self.output_slots]

    # ----------------------------------------------------------------- building
    def _plan_functional(self, model: Functional) -> None:
        numbers: dict[int, int] = {}

        def slot(tensor: Any) -> int:
            return numbers.setdefault(id(tensor), len(numbers))

        self.input_slots = [slot(t) for t in model.inputs]
        for step, node, fold in model._steps(fold=True):
            if fold is not None:
                source, norm, clip, padding, produced = fold
                run = _folded(node.layer, norm, clip, padding)
                inputs = [slot(source.input_tensors[0])]
                outputs = [slot(produced.outputs[0])]
            else:
                run = _layer(node.layer, isinstance(node.inputs, (list, tuple)))
                inputs = [slot(t) for t in node.input_tensors]
                outputs = [slot(t) for t in node.outputs]
            release = [numbers[key] for key in model._released_after[step] if key in numbers]
            self.steps.append(Step(run, inputs, outputs, release))
        self.output_slots = [slot(t) for t in model.outputs]
        self.n_slots = len(numbers)

    def _plan_sequential(self, model: Sequential) -> None:
        for slot, (layer, norm, clip) in enumerate(model._steps(fold=True)):
            run = _layer(layer, False) if norm is None else _folded(layer, norm, clip, None)
            self.steps.append(Step(run, [slot], [slot + 1], [slot]))
        last = len(self.steps)
        self.input_slots, self.output_slots, self.n_slots = [0], [last], last + 1


def _folded(layer: Layer, norm: Layer, clip, padding: Layer | None) -> Callable[..., Any]:
    """``norm(layer(padding(x)))`` (clipped to ``clip`` if given) with the folded weights bound."""
    kernel, bias = layer.folded_weights(*norm.inference_affine(np.float32))
    kernel, bias = kernel.astype(np.float32, copy=False), bias.astype(np.float32, copy=False)
    if type(layer) is Conv2D and layer.kernel_size == (1, 1) and tuple(layer.strides) == (1, 1):
        weights = np.ascontiguousarray(kernel.reshape(kernel.shape[2:]))
        rows_per_part = F.gemm_rows_per_part(weights.size)
        fused_gemm = _fused_gemm(weights, bias, clip)

        def pointwise(x: np.ndarray) -> np.ndarray:
            # A 1x1 convolution is one GEMM on the pixels (split over threads where it pays):
            # numba's with the bias and clip fused in where it is in use, else BLAS's and a pass.
            pixels = x.reshape(-1, x.shape[-1])
            step = fused_gemm(x)
            if step is not None:
                return step(pixels).reshape(*x.shape[:-1], weights.shape[1])
            out = np.empty((len(pixels), weights.shape[1]), dtype=np.float32)
            threads.split(
                len(pixels),
                lambda a, b: np.matmul(pixels[a:b], weights, out=out[a:b]),
                min_items=rows_per_part,
            )
            if clip is None:
                out += bias
            else:
                kernels.bias_clip_(out, bias, *clip)
            return out.reshape(*x.shape[:-1], weights.shape[1])

        return pointwise
    if type(layer) is Conv2D:
        strides, padding_mode = layer.strides, layer.padding
        kernel_hw, filters = kernel.shape[:2], kernel.shape[3]
        fused_gemm = _fused_gemm(np.ascontiguousarray(kernel.reshape(-1, filters)), bias, clip)

        def convolve(x: np.ndarray) -> np.ndarray:
            step = fused_gemm(x)
            if step is not None:
                # The patch matrix chunk by chunk into numba's GEMM, bias and clip fused.
                n, h, w, _ = x.shape
                xp = kernels.pad_nhwc(
                    x, kernels.pad_amounts(h, w, kernel_hw, strides, padding_mode)
                )
                out_hw = tuple(
                    kernels.output_length(size, k, s, padding_mode)
                    for size, k, s in zip((h, w), kernel_hw, strides)
                )
                out = np.empty((n * out_hw[0] * out_hw[1], filters), dtype=np.float32)
                for rows, cols in kernels.patch_chunks(xp, kernel_hw, strides, out_hw):
                    step(cols, out=out[rows])
                return out.reshape(n, *out_hw, filters)
            # The primitive's forward alone: no graph, no Tensors around the arrays.
            primitive = F.Conv2D()
            primitive.recording = False
            if clip is None:
                return primitive.forward(x, kernel, bias, strides, padding_mode)
            out = primitive.forward(x, kernel, None, strides, padding_mode)
            kernels.bias_clip_(out, bias, *clip)
            return out

        return convolve
    pads = None if padding is None else padding.padding
    fuses = clip is not None and layer.depth_multiplier == 1
    prepared: dict[Any, Callable[[np.ndarray], np.ndarray]] = {}  # per input shape and kernels

    def depthwise(x: np.ndarray) -> np.ndarray:
        key = (x.shape, x.dtype, jit.get_kernels())
        step = prepared.get(key)
        if step is None and fuses:
            step = layer.fused_inference_step(x.shape, x.dtype, kernel, bias, clip, pads)
            if step is not None:
                prepared[key] = step
        if step is None:
            return layer.call_folded(Tensor(x), kernel, bias, clip, pads=pads).data
        return step(x)

    return depthwise


def _fused_gemm(weights: np.ndarray, bias: np.ndarray, clip) -> Callable[[np.ndarray], Any]:
    """For an input ``x``: numba's GEMM of ``weights`` with ``bias`` and ``clip`` fused
    (``jit.gemm_bias_clip_step``), made once per kernel choice, or None where it is not in use
    (NumPy kernels, arrays too small to load numba, other dtypes, a kernel that cannot compile).
    """
    bounds = (-np.inf, np.inf) if clip is None else clip
    rows_per_part = F.gemm_rows_per_part(weights.size)
    steps: dict[str, Any] = {}

    def step_for(x: np.ndarray) -> Any:
        if x.dtype != np.float32:
            return None
        choice = jit.get_kernels()
        if choice not in steps:
            if not jit.enabled(x.size):
                return None
            steps[choice] = jit.gemm_bias_clip_step(weights, bias, *bounds, rows_per_part)
        return steps[choice]

    return step_for


def _layer(layer: Layer, several: bool) -> Callable[..., Any]:
    """The layer's own ``call`` on arrays (a Dense or an Add of equal-rank arrays: their
    primitives')."""

    def call(*arrays: np.ndarray) -> Any:
        tensors = [Tensor(a) for a in arrays]
        outputs = layer.call(tensors if several else tensors[0], training=False)
        if isinstance(outputs, (list, tuple)):
            return [t.data for t in outputs]
        return outputs.data

    if type(layer) is Dense:  # the GEMM and bias on arrays; only the activation sees a Tensor
        kernel = layer.kernel.data
        bias = None if layer.bias is None else layer.bias.data

        def dense(x: np.ndarray) -> np.ndarray:
            out = F.MatMul().forward(x, kernel)
            if bias is not None:
                out += bias
            return layer.activation(Tensor(out)).data

        return dense
    if type(layer) is Add:  # MobileNets' residual sums: no Tensors, no rank alignment

        def add(*arrays: np.ndarray) -> np.ndarray:
            if len({a.ndim for a in arrays}) > 1:
                return call(*arrays)
            return F.AddN().forward(*arrays)

        return add
    return call
