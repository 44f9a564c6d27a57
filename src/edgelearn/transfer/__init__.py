"""Transfer learning: new classes on top of a base model's embeddings, as in TF.js.

:class:`KNNClassifier` is TF.js's knn-classifier (no training: examples vote by cosine
similarity); :class:`TransferRecognizer` is speech-commands' transfer recognizer for images (a
trained softmax head, optionally fine-tuned with the base, saved as one TF.js layers model).

Example:
    >>> import numpy as np
    >>> from edgelearn.transfer import KNNClassifier
    >>> knn = KNNClassifier()
    >>> knn.add_example(np.array([1.0, 0.0]), "a")
    >>> knn.add_example(np.array([0.0, 1.0]), "b")
    >>> knn.predict_class(np.array([0.9, 0.2]), k=1)["label"]
    'a'
"""

from edgelearn.transfer.knn import KNNClassifier, KNNFormatError
from edgelearn.transfer.recognizer import ExamplesFormatError, TransferRecognizer, load_labels

__all__ = [
    "ExamplesFormatError",
    "KNNClassifier",
    "KNNFormatError",
    "TransferRecognizer",
    "load_labels",
]
