"""Image analysis for the consistency checks: where the character is, and what colours it wears.

Everything here reads pixels with numpy and scikit-image, which take a noticeable time to
import, so nothing imports this package at start-up: the ``palette`` checker and the anchor
hygiene warnings load it when they first look at an image.
"""
