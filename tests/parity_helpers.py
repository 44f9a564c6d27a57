"""Helpers of the TensorFlow.js parity tests (tests/test_parity_tfjs*.py): per-case random data,
the comparison with its tolerance TOL (justified in tests/test_parity_tfjs.py's docstring), and
the check of a reference.js "layer" case.

pytest rewrites the asserts of test modules only, so every assert here says what it compares.
"""

import zlib

import numpy as np

import edgelearn as el
from edgelearn.engine import Tensor

TOL = 1e-5


def case_rng(case_id):
    """A generator seeded from the case's name, so that adding a case changes no other case."""
    return np.random.default_rng(zlib.crc32(case_id.encode()))


def normal(rng, shape, scale=1.0, loc=0.0):
    return (loc + scale * rng.standard_normal(shape)).astype(np.float32)


def reference(results, case_id):
    """TF.js's result for `case_id`, which must not be an error."""
    ref = results[case_id]
    assert "error" not in ref, f"TF.js could not compute {case_id}: {ref['error']}"
    return ref


def assert_close(actual, expected, what, tol=TOL):
    assert actual is not None, f"{what}: edgelearn produced no value"
    actual = np.asarray(actual)
    shape = np.shape(expected)
    assert actual.shape == shape, f"{what}: shape {actual.shape}, TF.js gives {shape}"
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol, err_msg=what)


def check_layer_case(case, ref):
    """edgelearn's layer on a reference.js "layer" case against TF.js's result `ref`: y, the
    gradients w.r.t. the input and each trainable weight, and all weights after the call."""
    layer = el.layers.deserialize({"class_name": case["class_name"], "config": case["config"]})
    layer.build(tuple(case["input_shape"]))
    layer.set_weights(case["weights"])
    x = Tensor(case["x"], requires_grad=True)
    y = layer(x, training=case["training"])
    # Back-propagating dy is differentiating sum(y * dy), which is what TF.js differentiates.
    y.backward(case["dy"])
    assert y.numpy().dtype == np.float32, f"y is {y.numpy().dtype}, not float32"
    assert_close(y.numpy(), ref["y"], "y")
    assert_close(x.grad, ref["dx"], "dx")
    trainable = layer.trainable_weights
    assert len(trainable) == len(ref["dweights"]), (
        f"{len(trainable)} trainable weights, TF.js differentiates {len(ref['dweights'])}"
    )
    for weight, expected in zip(trainable, ref["dweights"]):
        assert_close(weight.grad, expected, f"gradient of {weight.name}")
    weights_after = layer.get_weights()
    assert len(weights_after) == len(ref["weights_after"]), (
        f"{len(weights_after)} weights, TF.js has {len(ref['weights_after'])}"
    )
    for i, (got, expected) in enumerate(zip(weights_after, ref["weights_after"])):
        assert_close(got, expected, f"weight {i} after the call")
