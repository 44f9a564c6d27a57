"""Calibrate the MNIST demo's accuracy: edgelearn and PyTorch trained from identical starts.

Trains the TensorFlow.js codelab CNN (``edgelearn.demos.mnist.codelab_cnn``) the way
``edgelearn.demos.mnist.run`` does: 10 epochs, batch 64, Adam lr 1e-3, sparse categorical
cross-entropy, on the 7,000 local MNIST training digits scaled to [0, 1] with the last 15% held
out (as ``fit(validation_split=0.15)`` does), then measures accuracy on the 3,000 test digits.
For each seed the PyTorch twin starts from edgelearn's initial weights (glorot-uniform kernels,
zero biases) and sees the same batches in the same order, the order ``fit`` itself would draw.

Before training it checks, on one batch at that identical start, that both give the same loss,
the same gradients and the same weights after one Adam step (max abs differences printed). If
they agree, any accuracy gap left comes from float rounding compounding over training, seeds and
data, not from the implementation; the spread over seeds says how large such gaps are.

Layouts: Keras kernels are (kh, kw, in, out) and torch's (out, in, kh, kw); edgelearn flattens
NHWC activations, so the torch twin permutes its NCHW activations to NHWC before Flatten and the
Dense kernel is copied as a plain transpose.

Adam: PyTorch (and TensorFlow.js) add epsilon to sqrt(v_hat); Keras adds it to sqrt(v), with the
bias corrections folded into the step size, which equals PyTorch's rule with a per-step epsilon
of eps / sqrt(1 - beta_2^t). The two differ where |gradient| is near that epsilon, mostly in the
first steps. The check tells which form edgelearn's first step follows (from its own gradient),
and by default (``--torch-adam auto``) the twin then uses that form, with Keras' epsilon 1e-7
(torch's default is 1e-8), so that both run the same update rule.

Run (from the repository root, with the bench extra: ``pip install -e ".[bench]"``):

    python benchmarks/accuracy_parity.py                    # seeds 0-4, about 1-2 minutes
    python benchmarks/accuracy_parity.py --seeds 0 1 2 3 4 5 6 7 8 9
    python benchmarks/accuracy_parity.py --check-only       # the one-batch check alone
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from typing import Any

import numpy as np
from _common import TORCH_PIN, limit_threads, source_revision

import edgelearn as el
from edgelearn.demos.mnist import codelab_cnn, prepare

VALIDATION_SPLIT = 0.15  # as edgelearn.demos.mnist.run passes to fit
LEARNING_RATE = 1e-3
ADAM_EPSILON = 1e-7  # Keras' and edgelearn's default
BETA_1, BETA_2 = 0.9, 0.999
ADAM_FORMS = {
    "keras": "Keras form, epsilon added to sqrt(v)",
    "torch": "PyTorch / TF.js form, epsilon added to sqrt(v_hat)",
}


def import_torch() -> Any:
    try:
        import torch
    except ImportError:
        sys.exit(
            f"accuracy_parity.py compares against PyTorch, which is not installed: "
            f"pip install {TORCH_PIN}"
        )
    return torch


torch = import_torch()
nn = torch.nn
functional = torch.nn.functional


class TorchCodelabCNN(nn.Module):
    """The codelab CNN in PyTorch, returning logits (softmax is folded into the loss)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 5)
        self.conv2 = nn.Conv2d(8, 16, 5)
        self.dense = nn.Linear(256, 10)

    def forward(self, x: Any) -> Any:
        x = functional.max_pool2d(functional.relu(self.conv1(x)), 2, 2)
        x = functional.max_pool2d(functional.relu(self.conv2(x)), 2, 2)
        # NCHW -> NHWC before flattening, so the features come in edgelearn's (Keras') order.
        return self.dense(torch.flatten(x.permute(0, 2, 3, 1), 1))


# ------------------------------------------------------------------------------ layout helpers
def keras_to_torch(weights: list[np.ndarray]) -> dict[str, Any]:
    """edgelearn's [k1, b1, k2, b2, dense_k, dense_b] as the twin's state dict."""
    k1, b1, k2, b2, kd, bd = weights
    arrays = {
        "conv1.weight": k1.transpose(3, 2, 0, 1),
        "conv1.bias": b1,
        "conv2.weight": k2.transpose(3, 2, 0, 1),
        "conv2.bias": b2,
        "dense.weight": kd.T,
        "dense.bias": bd,
    }
    return {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()}


def torch_to_keras(tensors: list[Any]) -> list[np.ndarray]:
    """The twin's parameters (or their gradients), in edgelearn's order and layouts."""
    w1, b1, w2, b2, wd, bd = (t.detach().numpy() for t in tensors)
    return [w1.transpose(2, 3, 1, 0), b1, w2.transpose(2, 3, 1, 0), b2, wd.T, bd]


def nchw(x: np.ndarray) -> Any:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def max_abs_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))


# ------------------------------------------------------------------------------ the two learners
class Pair:
    """An edgelearn model and its torch twin, started from the same weights."""

    def __init__(self, adam_form: str) -> None:
        self.adam_form = adam_form
        # Built right after set_random_seed, as the demo does, so the shared generator is left
        # in the state that fit() would then draw its batch orders from.
        self.el_model = codelab_cnn()
        self.initial = self.el_model.get_weights()
        self.torch_model = TorchCodelabCNN()
        self.reset()

    def reset(self) -> None:
        """Back to the initial weights, with fresh optimizer state in both."""
        self.el_model.set_weights(self.initial)
        self.el_model.compile(
            optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        self.torch_model.load_state_dict(keras_to_torch(self.initial))
        self.optimizer = torch.optim.Adam(
            self.torch_model.parameters(),
            lr=LEARNING_RATE,
            betas=(BETA_1, BETA_2),
            eps=ADAM_EPSILON,
        )
        self.torch_steps = 0

    def el_loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        model = self.el_model
        for variable in model.trainable_weights:
            variable.grad = None
        loss = model.loss(y, model(x, training=True))
        loss.backward()
        grads = [v.grad.copy() for v in model.trainable_weights]
        for variable in model.trainable_weights:
            variable.grad = None
        return loss.item(), grads

    def torch_loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        model = self.torch_model
        model.zero_grad(set_to_none=True)
        loss = functional.nll_loss(
            functional.log_softmax(model(nchw(x)), dim=1), torch.from_numpy(y.astype(np.int64))
        )
        loss.backward()
        grads = torch_to_keras([p.grad for p in model.parameters()])
        model.zero_grad(set_to_none=True)
        return loss.item(), grads

    def torch_step(self, x: np.ndarray, y: np.ndarray) -> float:
        self.torch_steps += 1
        if self.adam_form == "keras":
            # Keras' rule is torch's with epsilon scaled by 1 / sqrt(1 - beta_2^t) at step t.
            eps = ADAM_EPSILON / math.sqrt(1 - BETA_2**self.torch_steps)
            for group in self.optimizer.param_groups:
                group["eps"] = eps
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.torch_model(nchw(x))
        loss = functional.nll_loss(
            functional.log_softmax(logits, dim=1), torch.from_numpy(y.astype(np.int64))
        )
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def torch_weights(self) -> list[np.ndarray]:
        return torch_to_keras(list(self.torch_model.parameters()))

    def torch_predict(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.torch_model(nchw(x)).argmax(dim=1).numpy()

    def el_predict(self, x: np.ndarray) -> np.ndarray:
        return self.el_model.predict(x, batch_size=512, verbose=0).argmax(axis=1)


def adam_first_step(grad: np.ndarray, form: str) -> np.ndarray:
    """Adam's first update (t = 1, from zero state) for ``grad`` under either form, in float64."""
    g = grad.astype(np.float64)
    eps = ADAM_EPSILON / math.sqrt(1 - BETA_2) if form == "keras" else ADAM_EPSILON
    return -LEARNING_RATE * g / (np.abs(g) + eps)


def start_check(pair: Pair, x: np.ndarray, y: np.ndarray, adam_form: str) -> dict[str, Any]:
    """Loss, gradients and one Adam step at the identical start, on one batch.

    Also finds which Adam form edgelearn's first step follows; with ``adam_form="auto"`` the
    twin then uses it (the pair keeps it for training).
    """
    el_loss, el_grads = pair.el_loss_and_grads(x, y)
    torch_loss, torch_grads = pair.torch_loss_and_grads(x, y)
    grad_diffs = [float(np.max(np.abs(a - b))) for a, b in zip(el_grads, torch_grads, strict=True)]
    grad_scales = [float(np.max(np.abs(b))) for b in torch_grads]
    pair.el_model.train_on_batch(x, y)
    el_steps = [w1 - w0 for w1, w0 in zip(pair.el_model.get_weights(), pair.initial, strict=True)]
    form_diffs = {
        form: max_abs_diff(el_steps, [adam_first_step(g, form) for g in el_grads])
        for form in ADAM_FORMS
    }
    el_form = min(form_diffs, key=form_diffs.get)
    # A form "matches" when it explains the step far better than the other does.
    other = max(form_diffs.values())
    el_form_clear = form_diffs[el_form] < 1e-6 and form_diffs[el_form] * 100 < other
    pair.adam_form = el_form if adam_form == "auto" else adam_form
    pair.torch_step(x, y)
    step_diff = max_abs_diff(pair.el_model.get_weights(), pair.torch_weights())
    pair.reset()
    return {
        "el_loss": el_loss,
        "torch_loss": torch_loss,
        "loss_diff": abs(el_loss - torch_loss),
        "grad_diffs": grad_diffs,
        "grad_scales": grad_scales,
        "grad_diff": max(grad_diffs),
        "step_diff": step_diff,
        "form_diffs": form_diffs,
        "el_form": el_form if el_form_clear else None,
        "twin_form": pair.adam_form,
    }


def print_start_check(check: dict[str, Any], names: list[str]) -> None:
    print(
        f"  loss: edgelearn {check['el_loss']:.8f}, torch {check['torch_loss']:.8f}, "
        f"|diff| {check['loss_diff']:.2e}"
    )
    for name, diff, scale in zip(names, check["grad_diffs"], check["grad_scales"], strict=True):
        print(
            f"  grad {name:<18} max |diff| {diff:.2e}  (max |grad| {scale:.2e}, "
            f"relative {diff / max(scale, 1e-30):.1e})"
        )
    print("  edgelearn's first Adam step vs the formula applied to its own gradient:")
    for form, diff in check["form_diffs"].items():
        print(f"    {ADAM_FORMS[form]:<52} max |diff| {diff:.2e}")
    if check["el_form"] is None:
        print(
            "  NOTE: edgelearn's Adam step follows neither form: its optimizer disagrees with "
            "both Keras and PyTorch (main finding)"
        )
    else:
        print(f"  -> edgelearn follows the {ADAM_FORMS[check['el_form']]}")
    print(f"  the torch twin uses the {ADAM_FORMS[check['twin_form']]}")
    if check["el_form"] is not None and check["el_form"] != check["twin_form"]:
        print(
            "  NOTE: the twin's Adam form differs from edgelearn's (--torch-adam), so the runs "
            "differ by design from the first step"
        )
    print(
        f"  weights after one Adam step (lr {LEARNING_RATE}): edgelearn vs twin max |diff| "
        f"{check['step_diff']:.2e}"
    )


# ------------------------------------------------------------------------------ training
def train_pair(
    pair: Pair,
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    epochs: int,
    batch_size: int,
    log_epochs: bool,
) -> None:
    """Train both on the same batches; the order is drawn as Model.fit draws it."""
    for epoch in range(epochs):
        order = el.random.generator().permutation(len(x_fit))
        el_losses, torch_losses = [], []
        for start in range(0, len(x_fit), batch_size):
            index = order[start : start + batch_size]
            xb, yb = x_fit[index], y_fit[index]
            el_loss, _accuracy = pair.el_model.train_on_batch(xb, yb)
            el_losses.append(el_loss * len(index))
            torch_losses.append(pair.torch_step(xb, yb) * len(index))
        if log_epochs:
            drift = max_abs_diff(pair.el_model.get_weights(), pair.torch_weights())
            print(
                f"  epoch {epoch + 1:>2}: train loss edgelearn {sum(el_losses) / len(x_fit):.4f}"
                f", torch {sum(torch_losses) / len(x_fit):.4f}; max |weight diff| {drift:.2e}"
            )


def fit_check(
    seed: int,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    batch_size: int,
    reference: list[np.ndarray],
) -> float:
    """Max |diff| between weights from the demo's own model.fit call and from the manual loop."""
    el.random.set_random_seed(seed)
    model = codelab_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(
        x, y, epochs=epochs, batch_size=batch_size, validation_split=VALIDATION_SPLIT, verbose=0
    )
    return max_abs_diff(model.get_weights(), reference)


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.mean(values):.2%} ± {sd:.2%}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2, 3, 4],
        help="seeds for weight initialisation and batch order (default 0 1 2 3 4)",
    )
    parser.add_argument("--epochs", type=int, default=10, help="epochs (default 10, as the demo)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads for both libraries (default 1: stepping the two in turn, "
        "OpenBLAS and OpenMP threads spin against each other on 2 cores)",
    )
    parser.add_argument(
        "--torch-adam",
        choices=["auto", *ADAM_FORMS],
        default="auto",
        help="the twin's Adam epsilon form: auto (the one edgelearn follows), "
        "keras, or torch (default auto)",
    )
    parser.add_argument(
        "--check-only",
        action="store_true",
        help="only the one-batch start check, for the first seed",
    )
    parser.add_argument(
        "--no-fit-check",
        action="store_true",
        help="skip re-training the first seed with model.fit to confirm the "
        "manual loop reproduces it",
    )
    args = parser.parse_args(argv)
    if args.epochs <= 0 or args.batch_size <= 0 or args.threads <= 0:
        parser.error("--epochs, --batch-size and --threads must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.use_deterministic_algorithms(True)
    limit_threads(args.threads, torch)
    (x_train, y_train), (x_test, y_test) = el.datasets.mnist.load_data(source="local")
    x_all, x_test = prepare(x_train), prepare(x_test)
    # Model.fit's validation_split: the last fraction, before shuffling.
    split = int(len(x_all) * (1 - VALIDATION_SPLIT))
    x_fit, y_fit, x_val, y_val = x_all[:split], y_train[:split], x_all[split:], y_train[split:]
    print("Accuracy parity: the TF.js codelab CNN in edgelearn and PyTorch from identical starts")
    print(
        f"data: local MNIST, {len(x_fit):,} training digits, {len(x_val):,} held out, "
        f"{len(x_test):,} test digits; {args.epochs} epochs, batch {args.batch_size}, "
        f"Adam lr {LEARNING_RATE} eps {ADAM_EPSILON}"
    )
    print(
        f"versions: numpy {np.__version__}, edgelearn {el.__version__} (source "
        f"{source_revision()}), torch {torch.__version__}; {args.threads} thread(s) each"
    )

    rows = []
    for number, seed in enumerate(args.seeds):
        began = time.perf_counter()
        el.random.set_random_seed(seed)
        pair = Pair(adam_form=args.torch_adam)
        # The check batch is fixed so it draws nothing from the shared generator.
        check = start_check(
            pair, x_fit[: args.batch_size], y_fit[: args.batch_size], args.torch_adam
        )
        if number == 0:
            print(
                f"\nOne-batch check at the identical start (seed {seed}, first "
                f"{args.batch_size} training digits):"
            )
            names = [v.name for v in pair.el_model.trainable_weights]
            print_start_check(check, names)
            if args.check_only:
                return 0
            print(f"\nTraining seed {seed} (per-epoch drift between the two):")
        train_pair(pair, x_fit, y_fit, args.epochs, args.batch_size, log_epochs=number == 0)
        el_test, torch_test = pair.el_predict(x_test), pair.torch_predict(x_test)
        rows.append(
            {
                "seed": seed,
                "el_test": float((el_test == y_test).mean()),
                "torch_test": float((torch_test == y_test).mean()),
                "agree": float((el_test == torch_test).mean()),
                "el_val": float((pair.el_predict(x_val) == y_val).mean()),
                "torch_val": float((pair.torch_predict(x_val) == y_val).mean()),
                "drift": max_abs_diff(pair.el_model.get_weights(), pair.torch_weights()),
                "loss_diff": check["loss_diff"],
                "grad_diff": check["grad_diff"],
                "seconds": time.perf_counter() - began,
            }
        )
        if number == 0 and not args.no_fit_check:
            diff = fit_check(
                seed, x_all, y_train, args.epochs, args.batch_size, pair.el_model.get_weights()
            )
            print(
                f"  model.fit(validation_split={VALIDATION_SPLIT}) as in the demo vs this loop: "
                f"max |weight diff| {diff:.2e}" + (" (identical)" if diff == 0 else "")
            )
        print(f"  seed {seed} done in {rows[-1]['seconds']:.0f} s", file=sys.stderr, flush=True)

    print("\nTest accuracy on the 3,000 test digits (val: the 15% held out):")
    print(
        f"{'seed':>4} {'edgelearn':>10} {'torch':>8} {'el-torch':>9} {'agree':>7} "
        f"{'el val':>8} {'torch val':>9} {'start |dloss|':>13} {'start |dgrad|':>13} "
        f"{'end |dw|':>9}"
    )
    for r in rows:
        print(
            f"{r['seed']:>4} {r['el_test']:>10.2%} {r['torch_test']:>8.2%} "
            f"{(r['el_test'] - r['torch_test']) * 100:>+8.2f}p {r['agree']:>7.2%} "
            f"{r['el_val']:>8.2%} {r['torch_val']:>9.2%} {r['loss_diff']:>13.1e} "
            f"{r['grad_diff']:>13.1e} {r['drift']:>9.2e}"
        )
    el_acc = [r["el_test"] for r in rows]
    torch_acc = [r["torch_test"] for r in rows]
    gaps = [a - b for a, b in zip(el_acc, torch_acc, strict=True)]
    print(
        f"\nedgelearn: mean ± stdev {mean_sd(el_acc)} over {len(rows)} seeds "
        f"(min {min(el_acc):.2%}, max {max(el_acc):.2%})"
    )
    print(
        f"torch:     mean ± stdev {mean_sd(torch_acc)} over {len(rows)} seeds "
        f"(min {min(torch_acc):.2%}, max {max(torch_acc):.2%})"
    )
    if len(gaps) > 1:
        se = statistics.stdev(gaps) / len(gaps) ** 0.5
        print(
            f"paired gap edgelearn - torch: {statistics.mean(gaps) * 100:+.2f} points "
            f"(stdev {statistics.stdev(gaps) * 100:.2f}, standard error {se * 100:.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
