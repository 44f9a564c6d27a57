"""engine.threads: batches split over threads give the serial path's results, BLAS's thread
count comes back after a step, and errors in a part reach the caller."""

import os
import signal
import threading
import time

import numpy as np
import pytest

import edgelearn as el
from edgelearn.engine import Tensor, is_grad_enabled, jit, threads
from edgelearn.engine import functions as F
from edgelearn.runtime import Predictor


@pytest.fixture
def tiny_parts(monkeypatch):
    """Split even these small test arrays: one row, value or image per part is enough."""
    monkeypatch.setattr(F, "ROWS_PER_PART", 1)
    monkeypatch.setattr(F, "GEMM_WORK_PER_PART", 1)
    monkeypatch.setattr(threads, "ELEMENTS_PER_PART", 1)


@pytest.fixture(params=["numpy", "numba"])
def engine_kernels(request, monkeypatch):
    if request.param == "numba":
        pytest.importorskip("numba")
        monkeypatch.setattr(jit, "MIN_ELEMENTS", 0)
    jit.set_kernels(request.param)
    yield request.param
    jit.set_kernels("auto")


def test_split_runs_contiguous_parts_in_order_on_several_threads():
    seen = set()

    def run(start, stop):
        seen.add(threading.get_ident())
        return start, stop

    assert threads.split(10, run) == [(0, 10)]  # outside parallel_step: one part
    with threads.parallel_step(workers=3) as width:
        assert width == threads.width() == 3
        assert threads.split(10, run) == [(0, 3), (3, 6), (6, 10)]
        assert threads.split(10, run, min_items=4) == [(0, 5), (5, 10)]
        assert threads.split(1, run) == [(0, 1)]
    assert threads.width() == 1
    assert len(seen) > 1


def test_small_batches_keep_blas_threads_unless_told_otherwise():
    if threads.blas_threads() is None:
        pytest.skip("numpy's BLAS is not an OpenBLAS edgelearn can control here")
    small = threads.MIN_BATCH_ELEMENTS - 1
    with threads.parallel_step(batch_elements=small) as width:
        assert width == 1
    with threads.parallel_step(workers=2, batch_elements=small) as width:
        assert width == 2


def test_an_outer_block_decides_the_width_of_inner_ones():
    with threads.parallel_step(workers=1), threads.parallel_step(workers=2) as width:
        assert width == 1 and threads.split(4, lambda a, b: (a, b)) == [(0, 4)]
    with threads.parallel_step(workers=2), threads.parallel_step(workers=1) as width:
        assert width == 2


def test_a_split_inside_a_part_runs_whole_on_that_thread():
    with threads.parallel_step(workers=2):
        inner = threads.split(4, lambda a, b: threads.split(8, lambda c, d: (c, d)))
    assert inner == [[(0, 8)], [(0, 8)]]


def test_an_error_in_any_part_reaches_the_caller_after_every_part_ends():
    finished = []

    def run(start, stop):
        if start:
            raise RuntimeError(f"part at {start} failed")
        finished.append(start)

    with threads.parallel_step(workers=2), pytest.raises(RuntimeError, match="part at 5"):
        threads.split(10, run)
    assert finished == [0]


def test_parallel_step_rejects_a_width_below_one():
    with pytest.raises(ValueError, match="Received: workers=0"), threads.parallel_step(0):
        pass


def test_blas_runs_on_one_thread_inside_a_step_and_gets_its_count_back():
    before = threads.blas_threads()
    if before is None:
        pytest.skip("numpy's BLAS is not an OpenBLAS edgelearn can control here")
    with threads.parallel_step(workers=2):
        assert threads.blas_threads() == 1
    assert threads.blas_threads() == before


def _codelab_like(seed, batch_norm=False):
    layers = el.layers
    el.random.set_random_seed(seed)
    model = el.Sequential(
        [
            layers.Input((12, 12, 1)),
            layers.Conv2D(4, 3, activation="relu"),
            *([layers.BatchNormalization()] if batch_norm else []),
            layers.MaxPooling2D(2),
            layers.Conv2D(6, 3, activation="relu", padding="same"),
            layers.Conv2D(5, 1),
            layers.Flatten(),
            layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize(
    "batch_norm", [False, True], ids=["whole model per part", "split primitive by primitive"]
)
def test_split_steps_match_the_serial_path(tiny_parts, engine_kernels, batch_norm):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 12, 12, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=6)
    serial, split = _codelab_like(1, batch_norm), _codelab_like(1, batch_norm)
    with threads.parallel_step(workers=1):
        expected = serial.predict_on_batch(x)
        expected_losses = [serial.train_on_batch(x, y) for _ in range(3)]
    with threads.parallel_step(workers=3):
        # Forward results come from one part each: the same bits.
        np.testing.assert_array_equal(split.predict_on_batch(x), expected)
        losses = [split.train_on_batch(x, y) for _ in range(3)]
    # Kernel gradients add per-part sums: equal to float32 rounding.
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-5)
    for a, b in zip(serial.get_weights(), split.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


class _Recorder(el.layers.Layer):
    """Passes its inputs through and notes the threads it ran on."""

    def __init__(self, samplewise=True, **kwargs):
        super().__init__(**kwargs)
        self.samplewise = samplewise
        self.thread_ids = set()
        self.grad_modes = set()

    def call(self, inputs, training=False):
        self.thread_ids.add(threading.get_ident())
        self.grad_modes.add(is_grad_enabled())
        return inputs


def _recorded_model(seed, *middle, loss="sparse_categorical_crossentropy"):
    layers = el.layers
    el.random.set_random_seed(seed)
    recorder = _Recorder()
    model = el.Sequential(
        [
            layers.Input((6, 6, 2)),
            layers.Conv2D(3, 3, activation="relu"),
            *middle,
            recorder,
            layers.Flatten(),
            layers.Dense(2, activation="softmax", kernel_regularizer="l2"),
        ]
    )
    model.compile(optimizer="adam", loss=loss)
    return model, recorder


def test_a_step_of_samplewise_layers_runs_each_part_through_the_whole_model(engine_kernels):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(8, 6, 6, 2)).astype(np.float32)
    y = rng.integers(0, 2, size=8)
    serial, _ = _recorded_model(3)
    split, recorder = _recorded_model(3)
    with threads.parallel_step(workers=1):
        expected = [serial.train_on_batch(x, y) for _ in range(3)]
    with threads.parallel_step(workers=2):
        actual = [split.train_on_batch(x, y) for _ in range(3)]
    assert len(recorder.thread_ids - {threading.get_ident()}) >= 1  # parts ran elsewhere too
    # Each part's loss weighted by its share, the penalty counted once.
    np.testing.assert_allclose(actual, expected, rtol=1e-5)
    for a, b in zip(serial.get_weights(), split.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("middle", "split_expected"),
    [
        (el.layers.BatchNormalization, True),  # moving statistics at inference
        (lambda: el.layers.Dropout(0.5), True),  # nothing at inference
        (lambda: _Recorder(samplewise=False), False),
    ],
    ids=["batch norm", "dropout", "custom layer"],
)
def test_predictions_run_each_part_through_the_whole_model_without_recording_graphs(
    middle, split_expected
):
    x = np.random.default_rng(7).normal(size=(8, 6, 6, 2)).astype(np.float32)
    model, recorder = _recorded_model(5, middle())
    with threads.parallel_step(workers=1):
        expected = model.predict_on_batch(x)
    with threads.parallel_step(workers=2):
        np.testing.assert_array_equal(model.predict_on_batch(x), expected)
    assert bool(recorder.thread_ids - {threading.get_ident()}) == split_expected
    assert recorder.grad_modes == {False}


def test_a_split_step_with_dropout_draws_the_masks_the_serial_step_draws():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(8, 6, 6, 2)).astype(np.float32)
    y = rng.integers(0, 2, size=8)
    built = [
        _recorded_model(6, el.layers.Dropout(0.5, seed=4), el.layers.Dropout(0.3)) for _ in range(2)
    ]
    models = [model for model, _ in built]
    losses = []
    for model, workers in zip(models, (1, 2)):
        el.random.set_random_seed(12)  # the unseeded Dropout's draws
        with threads.parallel_step(workers=workers):
            losses.append([model.train_on_batch(x, y) for _ in range(3)])
    assert built[1][1].thread_ids - {threading.get_ident()}  # the second one split
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_dropout_called_twice_in_a_graph_is_not_split_and_draws_at_each_call():
    layers = el.layers
    inputs = layers.Input((6,))
    dropout = layers.Dropout(0.5)
    recorder = _Recorder()
    outputs = layers.Dense(2, activation="softmax")(recorder(dropout(dropout(inputs))))
    model = el.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = np.ones((8, 6), dtype=np.float32)
    with threads.parallel_step(workers=2):
        model.train_on_batch(x, np.zeros(8, dtype=int))
    assert recorder.thread_ids == {threading.get_ident()}
    assert dropout._step_keep is None


class _SummedLoss(el.losses.SparseCategoricalCrossentropy):
    """A sum over samples, not a mean: its parts cannot be weighted by their share."""

    def __call__(self, y_true, y_pred):
        return self.per_sample(y_true, y_pred).sum()


@pytest.mark.parametrize(
    ("middle", "loss", "split_expected"),
    [
        (lambda: el.layers.BatchNormalization(), None, False),  # batch statistics
        (lambda: el.layers.BatchNormalization(trainable=False), None, True),
        (lambda: el.layers.Dropout(0.5), None, True),  # masks drawn for the whole batch first
        (lambda: _Recorder(samplewise=False), None, False),  # a layer that did not say so
        (lambda: el.layers.ReLU(), _SummedLoss(), False),
    ],
    ids=["batch norm", "frozen batch norm", "dropout", "custom layer", "summed loss"],
)
def test_the_whole_model_splits_only_where_every_layer_and_loss_allows(
    middle, loss, split_expected
):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(8, 6, 6, 2)).astype(np.float32)
    y = rng.integers(0, 2, size=8)
    model, recorder = _recorded_model(4, middle(), loss=loss or "sparse_categorical_crossentropy")
    with threads.parallel_step(workers=2):
        model.train_on_batch(x, y)
    others = recorder.thread_ids - {threading.get_ident()}
    assert bool(others) == split_expected


def test_whole_model_splits_start_at_smaller_batches_than_primitive_splits():
    if threads.blas_threads() is None:
        pytest.skip("numpy's BLAS is not an OpenBLAS edgelearn can control here")
    assert threads.MIN_TRAINING_SPLIT_ELEMENTS < threads.MIN_INFERENCE_SPLIT_ELEMENTS
    assert threads.MIN_INFERENCE_SPLIT_ELEMENTS < threads.MIN_BATCH_ELEMENTS
    between = threads.MIN_TRAINING_SPLIT_ELEMENTS
    with threads.parallel_step(batch_elements=between) as width:
        assert width == 1
    blas = threads.blas_threads()
    with threads.parallel_step(
        batch_elements=between, min_batch_elements=threads.MIN_TRAINING_SPLIT_ELEMENTS
    ) as width:
        assert width == blas


def test_split_primitives_match_the_serial_path(tiny_parts, engine_kernels):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 8, 8, 3)).astype(np.float32)
    kernel = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    w = rng.normal(size=(16, 7)).astype(np.float32)
    depthwise = rng.normal(size=(3, 3, 4, 1)).astype(np.float32)

    def run():
        inputs = [Tensor(a.copy(), requires_grad=True) for a in (x, kernel, w, depthwise)]
        conv = F.Conv2D.apply(inputs[0], inputs[1], None, strides=(1, 1), padding="same")
        conv = F.DepthwiseConv2D.apply(conv, inputs[3], None, strides=(1, 1), padding="same")
        pooled = F.MaxPool2D.apply(
            F.ReLU.apply(conv), pool_size=(2, 2), strides=(2, 2), padding="valid"
        )
        out = F.MatMul.apply(pooled.reshape(20, 16), inputs[2])
        out.backward(np.ones(out.shape, np.float32))
        return out.numpy(), [t.grad for t in inputs]

    expected, expected_grads = run()
    with threads.parallel_step(workers=2):
        actual, grads = run()
    np.testing.assert_array_equal(actual, expected)
    for a, b in zip(grads, expected_grads):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_splits_with_threads_of_its_own():
    with threads.parallel_step(workers=2):
        threads.split(4, lambda a, b: None)  # the parent's pool exists now
        pid = os.fork()
        if pid == 0:  # the child: a split must not wait on the parent's threads
            try:
                ok = threads.split(4, lambda a, b: (a, b)) == [(0, 2), (2, 4)]
            finally:
                os._exit(0 if ok else 1)
    deadline = time.monotonic() + 30
    while (finished := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if finished[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child's split hung: it waited on its parent's threads")
    assert os.waitstatus_to_exitcode(finished[1]) == 0


def test_a_predictor_runs_each_part_of_a_batch_through_its_plan_on_a_thread():
    layers = el.layers
    el.random.set_random_seed(9)
    model = el.Sequential(
        [
            layers.Input((6, 6, 2)),
            layers.Conv2D(3, 3),
            layers.BatchNormalization(),
            layers.ReLU(6.0),
            layers.Flatten(),
            layers.Dense(2),
        ]
    )
    x = np.random.default_rng(8).normal(size=(8, 6, 6, 2)).astype(np.float32)
    predictor = Predictor(model)
    plan_run, thread_ids = predictor.plan.run, set()

    def recording_run(arrays):
        thread_ids.add(threading.get_ident())
        return plan_run(arrays)

    predictor.plan.run = recording_run
    with threads.parallel_step(workers=1):
        expected = predictor.predict_on_batch(x)
    with threads.parallel_step(workers=2):
        np.testing.assert_array_equal(predictor.predict_on_batch(x), expected)
    assert thread_ids - {threading.get_ident()}
