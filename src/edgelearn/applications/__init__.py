"""Pre-trained models: MobileNetV2 and MobileNet as Keras builds them, and nsfwjs' MobileNetV2.

Example:
    >>> from edgelearn.applications import MobileNetV2, nsfwjs
    >>> nsfwjs.CLASSES[:2]
    ('Drawing', 'Hentai')
    >>> MobileNetV2((96, 96, 3), include_top=False, weights=None).output_shape
    (None, 3, 3, 1280)
"""

from edgelearn.applications import images, mobilenet, mobilenet_v2, nsfwjs
from edgelearn.applications.mobilenet import MobileNet
from edgelearn.applications.mobilenet_v2 import MobileNetV2

__all__ = ["MobileNet", "MobileNetV2", "images", "mobilenet", "mobilenet_v2", "nsfwjs"]
