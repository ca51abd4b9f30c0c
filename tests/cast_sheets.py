"""Model sheets the cast tests share: the README's bedroom, and the hair a drift draws."""

from __future__ import annotations

from onmodel.sheet import ModelSheet

README_BEDROOM = ModelSheet(  # the README's bedroom.yaml
    style="Clean cel-shaded anime illustration",
    layout="bed under the window on the left, desk and chair on the right",
    fixed_objects=["guitar stand by the desk", "round green rug", "star-shaped lamp"],
    lighting="warm afternoon light from the window",
    palette=["#f3e9d2", "#2e8b57", "#f0a04b"],
)
BLUE_HAIR = "#3b5ba5"
