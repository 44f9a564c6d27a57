"""Every primitive against an oracle: NumPy for the forward pass, finite differences (float64)
for the backward pass."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from edgelearn.engine import Tensor, Variable, gradients, no_grad
from edgelearn.engine import functions as F
from edgelearn.testing import numeric_gradient

rng = np.random.default_rng(0)


def _positive(shape):
    return rng.uniform(0.5, 2.0, size=shape)


def _normal(shape):
    return rng.normal(size=shape)


# name, primitive, input arrays, attributes, NumPy oracle of the forward pass
CASES = [
    ("add-broadcast", F.Add, [_normal((3, 4)), _normal((4,))], {}, lambda a, b: a + b),
    ("sub-broadcast", F.Sub, [_normal((3, 1)), _normal((3, 4))], {}, lambda a, b: a - b),
    ("mul-broadcast", F.Mul, [_normal((2, 3, 4)), _normal((1, 3, 1))], {}, lambda a, b: a * b),
    ("div", F.Div, [_normal((3, 4)), _positive((3, 4))], {}, lambda a, b: a / b),
    ("neg", F.Neg, [_normal((5,))], {}, lambda a: -a),
    ("matmul", F.MatMul, [_normal((3, 4)), _normal((4, 2))], {}, lambda a, b: a @ b),
    ("matmul-3d", F.MatMul, [_normal((2, 3, 4)), _normal((4, 2))], {}, lambda a, b: a @ b),
    ("exp", F.Exp, [_normal((3, 3))], {}, np.exp),
    ("log", F.Log, [_positive((3, 3))], {}, np.log),
    ("abs", F.Abs, [_normal((3, 3))], {}, np.abs),
    (
        "clip",
        F.Clip,
        [_normal((4, 4))],
        {"low": -0.5, "high": 0.5},
        lambda a: np.clip(a, -0.5, 0.5),
    ),
    ("reshape", F.Reshape, [_normal((2, 6))], {"shape": (3, 4)}, lambda a: a.reshape(3, 4)),
    (
        "transpose",
        F.Transpose,
        [_normal((2, 3, 4))],
        {"axes": (2, 0, 1)},
        lambda a: a.transpose(2, 0, 1),
    ),
    ("sum-all", F.Sum, [_normal((2, 3))], {}, lambda a: a.sum()),
    ("sum-axis", F.Sum, [_normal((2, 3, 4))], {"axis": 1}, lambda a: a.sum(1)),
    (
        "mean-keepdims",
        F.Mean,
        [_normal((2, 3, 4))],
        {"axis": (1, 2), "keepdims": True},
        lambda a: a.mean((1, 2), keepdims=True),
    ),
    ("relu", F.ReLU, [_normal((4, 5))], {}, lambda a: np.maximum(a, 0)),
    (
        "relu-capped-leaky",
        F.ReLU,
        [_normal((4, 5)) * 2],
        {"max_value": 1.0, "negative_slope": 0.3},
        lambda a: np.where(a > 0, np.minimum(a, 1.0), 0.3 * a),
    ),
    ("sigmoid", F.Sigmoid, [_normal((4, 5)) * 5], {}, lambda a: 1 / (1 + np.exp(-a))),
    ("tanh", F.Tanh, [_normal((4, 5))], {}, np.tanh),
    (
        "elu",
        F.Elu,
        [_normal((4, 5))],
        {"alpha": 1.5},
        lambda a: np.where(a > 0, a, 1.5 * np.expm1(a)),
    ),
    (
        "softmax",
        F.Softmax,
        [_normal((3, 5))],
        {},
        lambda a: np.exp(a) / np.exp(a).sum(-1, keepdims=True),
    ),
    (
        "softmax-axis0",
        F.Softmax,
        [_normal((3, 5))],
        {"axis": 0},
        lambda a: np.exp(a) / np.exp(a).sum(0, keepdims=True),
    ),
    (
        "log-softmax",
        F.LogSoftmax,
        [_normal((3, 5))],
        {},
        lambda a: a - np.log(np.exp(a).sum(-1, keepdims=True)),
    ),
    (
        "categorical-xent-logits",
        F.CategoricalCrossentropy,
        [_normal((3, 5)) * 3, rng.uniform(size=(3, 5))],
        {"from_logits": True},
        lambda x, y: -(y * (x - np.log(np.exp(x).sum(-1, keepdims=True)))).sum(-1),
    ),
    (
        "categorical-xent-probs",
        F.CategoricalCrossentropy,
        [_positive((3, 5)), rng.uniform(size=(3, 5))],
        {},
        lambda p, y: -(y * np.log(p / p.sum(-1, keepdims=True))).sum(-1),
    ),
    (
        "sigmoid-xent-logits",
        F.SigmoidCrossEntropyWithLogits,
        [_normal((3, 4)) * 4, rng.uniform(size=(3, 4))],
        {},
        lambda x, z: (
            -(z * np.log(1 / (1 + np.exp(-x))) + (1 - z) * np.log(1 - 1 / (1 + np.exp(-x))))
        ),
    ),
]


@pytest.mark.parametrize("name, primitive, arrays, attrs, oracle", CASES, ids=[c[0] for c in CASES])
def test_primitive_forward_and_backward(name, primitive, arrays, attrs, oracle):
    tensors = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    output = primitive.apply(*tensors, **attrs)
    np.testing.assert_allclose(output.numpy(), oracle(*arrays), rtol=1e-10, atol=1e-12)
    dy = rng.normal(size=output.shape)
    output.backward(dy)
    for tensor in tensors:

        def objective():
            return float((primitive.apply(*[t.data for t in tensors], **attrs).data * dy).sum())

        numeric = numeric_gradient(objective, tensor.data)
        np.testing.assert_allclose(tensor.grad, numeric, rtol=1e-5, atol=1e-7, err_msg=name)


def test_float32_graphs_stay_float32_with_python_and_float64_constants():
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    y = (x * 2.0 + np.float64(1.0)) / np.array([2.0, 2.0, 2.0])
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_gradients_accumulate_through_shared_subexpressions():
    x = Tensor(np.array([3.0]), requires_grad=True)
    y = x * x
    (y + y * x).sum().backward()  # d/dx (x^2 + x^3) = 2x + 3x^2
    np.testing.assert_allclose(x.grad, [6.0 + 27.0])


def test_gradients_match_backward_and_leave_grad_attributes_alone():
    rng = np.random.default_rng(3)
    x = Tensor(rng.normal(size=(4, 3)).astype(np.float32), requires_grad=True)
    w = Variable(rng.normal(size=(3, 2)).astype(np.float32))
    unused = Variable(np.ones(2, dtype=np.float32))
    h = x @ w
    out = (h * h + h).sum()
    grad_x, grad_w, grad_unused = gradients(out, [x, w, unused])
    assert x.grad is None and w.grad is None and grad_unused is None
    out.backward()
    np.testing.assert_array_equal(grad_x, x.grad)
    np.testing.assert_array_equal(grad_w, w.grad)
    assert gradients(Tensor(np.ones(2)).sum(), [x]) == [None]  # no graph to walk
    with pytest.raises(TypeError, match="Received: output=array"):
        gradients(np.ones(2), [x])
    with pytest.raises(TypeError, match="Received: a ndarray"):
        gradients(out, [x, np.ones(3)])


def test_gradients_of_graphs_sharing_weights_can_be_taken_on_several_threads():
    rng = np.random.default_rng(4)
    w = Variable(rng.normal(size=(8, 8)).astype(np.float32))
    batches = [rng.normal(size=(16, 8)).astype(np.float32) for _ in range(8)]

    def grad_of(batch):
        h = Tensor(batch)
        for _ in range(20):  # long enough for the threads' walks to interleave
            h = F.Tanh.apply(h @ w)
        return gradients(h.sum(), [w])[0]

    expected = [grad_of(batch) for batch in batches]
    with ThreadPoolExecutor(4) as pool:
        actual = list(pool.map(grad_of, batches))
    for a, b in zip(actual, expected):
        np.testing.assert_array_equal(a, b)
    assert w.grad is None


def test_categorical_crossentropy_clips_like_keras_and_its_gradient_stops_at_the_clip():
    # A row whose rescaled probabilities fall outside [1e-7, 1 - 1e-7]: the loss reads the
    # clipped value and no gradient flows through the clipped entries, as through F.Clip.
    predictions = np.array([[1e-9, 1.0, 0.5], [0.2, 0.3, 0.5]], dtype=np.float32)
    labels = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32)
    fused_input = Tensor(predictions, requires_grad=True)
    fused = F.CategoricalCrossentropy.apply(fused_input, labels, epsilon=1e-7)
    composed_input = Tensor(predictions, requires_grad=True)
    probs = F.Div.apply(composed_input, F.Sum.apply(composed_input, axis=-1, keepdims=True))
    log_probs = F.Log.apply(F.Clip.apply(probs, low=1e-7, high=1 - 1e-7))
    composed = F.Neg.apply(F.Sum.apply(F.Mul.apply(log_probs, labels), axis=-1))
    np.testing.assert_allclose(fused.numpy(), composed.numpy(), rtol=1e-6)
    assert fused.numpy()[0] == pytest.approx(-np.log(np.float32(1e-7)), rel=1e-6)
    dy = np.array([1.0, 2.0], dtype=np.float32)
    fused.backward(dy)
    composed.backward(dy)
    np.testing.assert_allclose(fused_input.grad, composed_input.grad, rtol=1e-5, atol=1e-6)
    assert fused_input.grad.dtype == np.float32


def test_deep_graphs_do_not_hit_the_recursion_limit():
    x = Tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 1.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0])


def test_no_grad_records_nothing():
    w = Variable(np.ones(2))
    with no_grad():
        y = w * 3.0
    assert not y.requires_grad and y._ctx is None


def test_backward_errors_are_clear():
    with pytest.raises(RuntimeError, match="does not require a gradient"):
        Tensor([1.0]).backward()
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(ValueError, match="needs a scalar tensor, received shape \\(3,\\)"):
        (x * 2).backward()
    with pytest.raises(ValueError, match="gradient of shape \\(3,\\), received \\(2,\\)"):
        (x * 2).backward(np.ones(2))


def test_variable_assign_checks_shape():
    v = Variable(np.zeros(3, dtype=np.float32), name="bias")
    with pytest.raises(
        ValueError, match="'bias' has shape \\(3,\\), cannot assign a value of shape \\(4,\\)"
    ):
        v.assign(np.zeros(4))


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    x = Tensor(np.zeros((1, 2, 2, 1)), requires_grad=True)
    F.MaxPool2D.apply(x, pool_size=(2, 2), strides=(2, 2), padding="valid").sum().backward()
    np.testing.assert_array_equal(x.grad[0, :, :, 0], [[1, 0], [0, 0]])


def test_conv2d_matches_a_direct_convolution():
    x, w, b = _normal((2, 6, 7, 3)), _normal((3, 2, 3, 4)), _normal((4,))
    out = F.Conv2D.apply(x, w, b, strides=(2, 1), padding="valid").numpy()
    expected = np.zeros((2, 2, 6, 4))
    for i in range(2):
        for j in range(6):
            patch = x[:, 2 * i : 2 * i + 3, j : j + 2, :]
            expected[:, i, j, :] = np.einsum("nhwc,hwcf->nf", patch, w) + b
    np.testing.assert_allclose(out, expected, rtol=1e-10)


@pytest.mark.parametrize("x_shape, w_shape", [((0, 4), (4, 3)), ((2, 0), (0, 3)), ((4,), (4, 3))])
def test_matmul_handles_empty_and_one_dimensional_inputs_as_numpy(x_shape, w_shape):
    x = Tensor(np.ones(x_shape, dtype=np.float32), requires_grad=True)
    w = Tensor(np.ones(w_shape, dtype=np.float32), requires_grad=True)
    out = F.MatMul.apply(x, w)
    np.testing.assert_array_equal(out.numpy(), x.numpy() @ w.numpy())
    out.sum().backward()
    assert x.grad.shape == x_shape and w.grad.shape == w_shape
