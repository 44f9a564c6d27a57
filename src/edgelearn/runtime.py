"""Inference snapshots of a model: the same predictions as ``model.predict``, faster.

:class:`Predictor` runs edgelearn's own kernels from a plan made once, with the batch
normalisations folded into the convolutions, as an inference session folds them when it loads a
model (``model.predict`` walks the layer graph and folds at every call, as it cannot know the
weights did not change). It needs nothing but the core.

:class:`OnnxRuntimePredictor` exports a model once with :func:`edgelearn.io.onnx.export` and runs
the ONNX graph in an ``onnxruntime.InferenceSession``. Its ``predict`` takes and returns what
``model.predict`` does (NHWC images, one array or a list / dict of arrays for several inputs,
one array or a list for several outputs), computed in float32. The predictor copies the
weights when it is made: create a new one after training the model further.

:class:`OnnxRuntimePredictor` needs ``pip install "edgelearn[onnx]"``; ``import edgelearn``
does not import onnx or onnxruntime.

Example:
    >>> import numpy as np, edgelearn as el
    >>> from edgelearn.runtime import OnnxRuntimePredictor
    >>> model = el.Sequential([el.layers.Input((8, 8, 1)), el.layers.Conv2D(2, 3),
    ...                        el.layers.Flatten(), el.layers.Dense(3, activation="softmax")])
    >>> x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    >>> predictor = OnnxRuntimePredictor(model, threads=1)
    >>> bool(np.allclose(predictor.predict(x), model.predict(x), atol=1e-5))
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgelearn.io import onnx as onnx_io
from edgelearn.models import Model
from edgelearn.models.inference import InferencePlan


class Predictor:
    """Predictions of ``model`` with its weights as they are when the predictor is made.

    The predictor runs a copy of the model (rebuilt from its config, with a copy of its
    weights), whose inference is planned once (:class:`edgelearn.models.inference.InferencePlan`):
    each batch normalisation that folds into the convolution before it (see
    :mod:`edgelearn.models.folding`) is folded once, and each prediction runs a flat list of
    steps on arrays. Make a new predictor after the weights change; the model itself is
    untouched and predicts as before.

    Example:
        >>> import numpy as np, edgelearn as el
        >>> from edgelearn.runtime import Predictor
        >>> model = el.Sequential([el.layers.Input((8, 8, 3)), el.layers.Conv2D(4, 3),
        ...                        el.layers.BatchNormalization(), el.layers.ReLU(6.0)])
        >>> x = np.random.default_rng(0).random((2, 8, 8, 3), dtype=np.float32)
        >>> bool(np.allclose(Predictor(model).predict(x), model.predict(x), atol=1e-6))
        True
    """

    def __init__(self, model: Model):
        if not isinstance(model, Model):
            raise TypeError(f"Predictor expects an edgelearn model. Received: model={model!r}")
        if not model.input_shapes:
            raise ValueError(
                f"Predictor copies a model's weights, and model '{model.name}' has none yet: give "
                "it an Input or run it on data first. Received: an unbuilt model"
            )
        self.model = model
        # Every layer's weights as they are now, folded or not: a copy of the whole model.
        self._snapshot = type(model).from_config(model.get_config())
        self._snapshot.set_weights(model.get_weights())
        self.plan = InferencePlan(self._snapshot)

    def predict(self, x: Any, batch_size: int | None = None) -> Any:
        """Outputs for ``x`` in batches of ``batch_size`` (32 by default), as ``model.predict``."""
        return self.model._predict_batches(x, batch_size, self._run)

    def predict_on_batch(self, x: Any) -> Any:
        """Outputs for one batch ``x``, as ``model.predict_on_batch``."""
        xs = self.model._inputs_list(x)
        self.model._check_inputs(xs)
        outputs = self._run(xs)
        return outputs[0] if len(outputs) == 1 else outputs

    def _run(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        # The model's own batching and threads (engine.threads), the plan in place of its layers.
        return self._snapshot._predict_lists(xs, self.plan.run)


class OnnxRuntimePredictor:
    """Predictions of ``model`` computed by ONNX Runtime (CPU).

    Args:
        model: a Sequential or functional edgelearn model whose layers :func:`export` supports.
        threads: ONNX Runtime's intra-op threads (None: its default, one per physical core).
        opset: the ONNX opset of the exported graph.
    """

    def __init__(
        self, model: Model, threads: int | None = None, opset: int = onnx_io.DEFAULT_OPSET
    ):
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1
        ):
            raise ValueError(
                f"OnnxRuntimePredictor expects threads to be None or a positive integer. "
                f"Received: threads={threads!r}"
            )
        ort = onnx_io.require("onnxruntime")
        self.model = model
        self.threads = threads
        serialized = onnx_io.export(model, opset=opset).SerializeToString()
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            # One graph branch at a time: the threads above are the whole budget.
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            serialized, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = [node.name for node in self.session.get_inputs()]

    def predict(self, x: Any, batch_size: int | None = None) -> Any:
        """Outputs for ``x`` in batches of ``batch_size`` (32 by default), as ``model.predict``.

        Example:
            >>> import numpy as np, edgelearn as el
            >>> from edgelearn.runtime import OnnxRuntimePredictor
            >>> a, b = el.layers.Input((3,)), el.layers.Input((3,))
            >>> model = el.Model([a, b], [el.layers.Add()([a, b]), el.layers.Dense(2)(a)])
            >>> ones = np.ones((5, 3), dtype=np.float32)
            >>> [y.shape for y in OnnxRuntimePredictor(model).predict([ones, ones])]
            [(5, 3), (5, 2)]
        """
        return self.model._predict_batches(x, batch_size, self._run)

    def _run(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        feed = {
            name: np.ascontiguousarray(a, dtype=np.float32) for name, a in zip(self._inputs, xs)
        }
        return self.session.run(None, feed)


__all__ = ["OnnxRuntimePredictor", "Predictor"]
