"""The studio: the one place that runs onmodel's flows, for the CLI and for library users alike.

Every generation follows the same path — plan (compose, validate, pick references), record a
pending row, call the provider, store the bytes, then mark the row succeeded — so a crash or an
API error at any step leaves a row that says what happened and never a lost request.

One module a part: ``lookups`` (characters, sessions, images, lineage), ``cast`` (creating
characters and sessions), ``planning`` (plans and their checks), ``pipeline`` (record → call →
store), ``costs``, ``annotations``, ``state`` (the current session) and ``core`` (the
:class:`Studio` that holds them).
"""

from onmodel.studio.core import Studio
from onmodel.studio.costs import CostReport
from onmodel.studio.pipeline import Delivery
from onmodel.studio.planning import ShotPlanner
from onmodel.studio.plans import ShotPlan

__all__ = ["CostReport", "Delivery", "ShotPlan", "ShotPlanner", "Studio"]
