"""The one source of randomness for weight initialisation, dropout and shuffling.

Keras users call ``keras.utils.set_random_seed``; the equivalent here is
:func:`set_random_seed`. Anything that takes an explicit ``seed`` argument uses its own generator.

Example:
    >>> import edgelearn as el
    >>> el.random.set_random_seed(0)
    >>> a = el.random.generator().random()
    >>> el.random.set_random_seed(0)
    >>> a == el.random.generator().random()
    True
"""

from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def set_random_seed(seed: int) -> None:
    """Make weight initialisation, dropout and shuffling repeatable from here on."""
    global _generator
    _generator = np.random.default_rng(seed)


def generator(seed: int | None = None) -> np.random.Generator:
    """A generator for ``seed`` if one is given, else the shared one."""
    return _generator if seed is None else np.random.default_rng(seed)
