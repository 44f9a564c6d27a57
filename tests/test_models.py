"""Sequential, compile/fit/evaluate/predict, callbacks and their errors."""

import io
import math

import numpy as np
import pytest

import edgelearn as el

L = el.layers


def _blobs(n=300, seed=0):
    """Three well-separated Gaussian blobs in 2-D: any working classifier gets ~100%."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[0.0, 4.0], [4.0, -2.0], [-4.0, -2.0]])
    return (centers[y] + rng.normal(size=(n, 2))).astype(np.float32), y


def _classifier(units=3):
    el.random.set_random_seed(0)
    return el.Sequential(
        [L.Input((2,)), L.Dense(16, activation="relu"), L.Dense(units, activation="softmax")]
    )


def test_fit_learns_and_history_has_keras_keys():
    x, y = _blobs()
    model = _classifier()
    model.compile(
        optimizer=el.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(x, y, epochs=15, batch_size=32, validation_split=0.2, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 15 and history.epoch == list(range(15))
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["val_accuracy"][-1] > 0.95
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert accuracy > 0.95 and loss < 0.3
    probabilities = model.predict(x[:5])
    assert probabilities.shape == (5, 3) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(1), 1, rtol=1e-5)


def test_fit_again_continues_training():
    x, y = _blobs()
    model = _classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    first = model.fit(x, y, epochs=2, verbose=0).history["loss"][-1]
    second = model.fit(x, y, epochs=2, verbose=0).history["loss"]
    assert second[0] < first * 1.05  # no re-initialisation between calls


def test_one_hot_labels_resolve_categorical_accuracy_and_validation_data():
    x, y = _blobs()
    onehot = el.data.to_categorical(y, 3)
    model = _classifier()
    model.compile(
        optimizer=el.optimizers.Adam(0.01),
        loss=el.losses.CategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    history = model.fit(x, onehot, epochs=5, validation_data=(x[:50], onehot[:50]), verbose=0)
    assert history.history["val_accuracy"][-1] > 0.9


def test_binary_classifier_uses_binary_accuracy():
    x, y = _blobs()
    target = (y == 0).astype(np.float32)
    el.random.set_random_seed(0)
    model = el.Sequential([L.Input((2,)), L.Dense(1, activation="sigmoid")])
    model.compile(optimizer=el.optimizers.SGD(0.5), loss="binary_crossentropy", metrics=["acc"])
    history = model.fit(x, target, epochs=10, verbose=0)
    assert history.history["acc"][-1] > 0.95


def test_from_logits_training():
    x, y = _blobs()
    el.random.set_random_seed(0)
    model = el.Sequential([L.Input((2,)), L.Dense(3)])
    model.compile(
        optimizer=el.optimizers.Adam(0.01),
        loss=el.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x, y, epochs=20, verbose=0)
    assert model.evaluate(x, y, verbose=0)[1] > 0.9


def test_train_on_batch_and_weights_in_keras_order():
    x, y = _blobs(64)
    model = _classifier()
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(2, 16), (16,), (16, 3), (3,)]
    loss, accuracy = model.train_on_batch(x, y)
    assert math.isfinite(loss) and 0 <= accuracy <= 1
    weights = [w * 0 for w in model.get_weights()]
    model.set_weights(weights)
    np.testing.assert_array_equal(model.predict(x[:2]), np.full((2, 3), 1 / 3, dtype=np.float32))


def test_sequential_infers_shapes_without_input_and_summary_counts_params():
    model = el.Sequential(
        [
            L.Conv2D(8, 5, activation="relu", input_shape=(28, 28, 1)),
            L.MaxPooling2D(2, strides=2),
            L.Flatten(),
            L.Dense(10),
        ]
    )
    assert model.output_shape == (None, 10)
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "(None, 24, 24, 8)" in text and "Total params: 11,738" in text
    assert model.count_params() == 8 * 25 + 8 + 12 * 12 * 8 * 10 + 10


def test_sequential_builds_lazily_from_the_first_batch():
    model = el.Sequential([L.Dense(4), L.Dense(2)])
    assert model.predict(np.zeros((3, 5))).shape == (3, 2)
    assert model.output_shape == (None, 2)


def test_early_stopping_restores_best_weights():
    x, y = _blobs()
    model = _classifier()
    model.compile(optimizer=el.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    seen = []

    class WorseningLoss(el.callbacks.Callback):
        """Reports a val_loss that only gets worse after epoch 1."""

        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = 1.0 if epoch == 1 else 2.0 + epoch
            if epoch == 1:
                seen.append(self.model.get_weights())

    stopper = el.callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    history = model.fit(x, y, epochs=20, callbacks=[WorseningLoss(), stopper], verbose=0)
    assert len(history.history["loss"]) == 4 and stopper.stopped_epoch == 3
    for restored, best in zip(model.get_weights(), seen[0]):
        np.testing.assert_array_equal(restored, best)


def test_lambda_callback_sees_every_hook():
    x, y = _blobs(40)
    model = _classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    events = []
    callback = el.callbacks.LambdaCallback(
        on_train_begin=lambda logs: events.append("train"),
        on_epoch_end=lambda epoch, logs: events.append(("epoch", epoch, sorted(logs))),
        on_train_batch_end=lambda batch, logs: events.append("batch"),
    )
    model.fit(x, y, epochs=2, batch_size=20, callbacks=[callback], verbose=0)
    assert events == [
        "train",
        "batch",
        "batch",
        ("epoch", 0, ["loss"]),
        "batch",
        "batch",
        ("epoch", 1, ["loss"]),
    ]
    with pytest.raises(ValueError, match="unknown hook 'on_epoch_finish'"):
        el.callbacks.LambdaCallback(on_epoch_finish=print)


def test_nan_loss_stops_training_naming_epoch_and_batch():
    x, y = _blobs(64)
    x[40] = np.nan
    model = _classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.warns(RuntimeWarning, match="loss became nan at epoch 1, batch 2 \\(of 2\\)"):
        history = model.fit(x, y, epochs=5, batch_size=32, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 1


def test_terminate_on_nan_callback():
    x, y = _blobs(64)
    x[0] = np.inf
    model = _classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.warns(RuntimeWarning):
        model.fit(
            x, y, epochs=3, shuffle=False, callbacks=[el.callbacks.TerminateOnNaN()], verbose=0
        )
    assert model.stop_training


def test_verbose_one_line_per_epoch_and_text_progress_bar(capsys):
    x, y = _blobs(64)
    model = _classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("Epoch 1/2 - ") and "accuracy: " in lines[0]
    stream = io.StringIO()
    logger = el.callbacks.ProgressLogger(1, stream=stream)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[logger])
    assert "Epoch 1/1" in stream.getvalue()


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda m, x, y: m.fit(x, y), RuntimeError, "must call compile\\(\\) before fit\\(\\)"),
        (lambda m, x, y: m.evaluate(x, y), RuntimeError, "before evaluate"),
    ],
)
def test_fit_before_compile(call, error, message):
    x, y = _blobs(10)
    with pytest.raises(error, match=message):
        call(_classifier(), x, y)


def test_data_errors_name_the_argument():
    x, y = _blobs(10)
    model = _classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="len\\(x\\)=10 and len\\(y\\)=9"):
        model.fit(x, y[:9], verbose=0)
    with pytest.raises(ValueError, match="label 7, outside the model's 3 classes"):
        model.fit(x, np.full(10, 7), verbose=0)
    with pytest.raises(
        ValueError, match="expects input of shape \\(None, 2\\), received x of shape \\(10, 3\\)"
    ):
        model.fit(np.zeros((10, 3)), y, verbose=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.fit(x, y, batch_size=0, verbose=0)
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    with pytest.raises(ValueError, match="outputs 3 values per sample"):
        model.fit(x, np.zeros((10, 4)), verbose=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"optimizer": "adamw", "loss": "mse"},
            "Unknown optimizer 'adamw'. Known optimizers: adagrad, adam",
        ),
        (
            {"optimizer": "sgd", "loss": "hinge"},
            "Unknown loss 'hinge'. Known losses: binary_crossentropy",
        ),
        ({"optimizer": "sgd", "loss": "mse", "metrics": ["f1"]}, "Unknown metric 'f1'"),
        ({"optimizer": "sgd"}, "compile\\(\\) needs a loss"),
    ],
)
def test_compile_errors_list_known_names(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _classifier().compile(**kwargs)


def test_regression_with_mse_and_mae():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32) + 0.3
    el.random.set_random_seed(0)
    model = el.Sequential([L.Input((3,)), L.Dense(1)])
    model.compile(optimizer=el.optimizers.SGD(0.1, momentum=0.9, nesterov=True), loss="mse")
    model.fit(x, y, epochs=20, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 1e-3
    model.compile(optimizer=el.optimizers.Adagrad(0.5), loss="mae")
    assert model.evaluate(x, y, verbose=0) < 0.05


def test_sequential_predict_folds_a_batch_norm_into_the_convolution_before_it(monkeypatch):
    el.random.set_random_seed(0)
    model = el.Sequential(
        [
            el.layers.Input((10, 10, 3)),
            el.layers.DepthwiseConv2D(3, depth_multiplier=2),
            el.layers.BatchNormalization(),
            el.layers.ReLU(6.0),  # applied with the folded bias
            el.layers.Conv2D(5, 3, activation="relu"),  # not linear: its BN stays apart
            el.layers.BatchNormalization(),
        ]
    )
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, el.layers.BatchNormalization):
            layer.moving_mean.data[...] = rng.normal(size=layer.moving_mean.data.shape)
            layer.moving_variance.data[...] = rng.uniform(0.5, 2, layer.moving_mean.data.shape)
            layer.gamma.data[...] = rng.uniform(0.5, 2, layer.moving_mean.data.shape)
    x = rng.normal(size=(2, 10, 10, 3)).astype(np.float32)
    calls = []
    for layer_class in (el.layers.BatchNormalization, el.layers.ReLU):
        monkeypatch.setattr(
            layer_class,
            "call",
            lambda self, *a, call=layer_class.call, **k: (
                calls.append(self.name) or call(self, *a, **k)
            ),
        )
    folded = model.predict(x)
    # The first normalisation and the ReLU ran inside the depthwise layer.
    assert calls == [model.layers[4].name]
    layered = model(el.engine.Tensor(x)).numpy()  # with a graph recorded: layer by layer
    np.testing.assert_allclose(folded, layered, rtol=1e-5, atol=1e-5)
