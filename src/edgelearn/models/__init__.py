"""Models: the training loop (:class:`Model`), :class:`Sequential` and functional models.

Example:
    >>> import edgelearn as el
    >>> inputs = el.layers.Input((3,))
    >>> type(el.Model(inputs, el.layers.Dense(1)(inputs))).__name__
    'Functional'
"""

from typing import Any

from edgelearn.models.functional import Functional
from edgelearn.models.sequential import Sequential
from edgelearn.models.training import Model


def model_from_config(config: dict[str, Any]) -> Model:
    """Build a model from a config dict.

    The config looks like
    ``{"class_name": "Sequential" | "Functional" | "Model", "config": ...}``.
    """
    class_name = config.get("class_name") if isinstance(config, dict) else None
    if class_name == "Sequential":
        return Sequential.from_config(config["config"])
    if class_name in ("Functional", "Model"):
        return Functional.from_config(config["config"])
    raise ValueError(
        f"Unknown model class {class_name!r}: expected 'Sequential', 'Functional' or 'Model'"
    )


__all__ = ["Functional", "Model", "Sequential", "model_from_config"]
