"""Pre-trained models.

Example:
    >>> from edgelearn.applications import nsfwjs
    >>> nsfwjs.CLASSES[:2]
    ('Drawing', 'Hentai')
"""

from edgelearn.applications import nsfwjs

__all__ = ["nsfwjs"]
