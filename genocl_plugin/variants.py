"""``genocl_plugin.scoring.variants``: the documented name of the scoring API, kept for existing code.

The implementation lives in :mod:`genocl_plugin.scoring`.
"""

from genocl_plugin.scoring import *  # noqa: F401,F403
from genocl_plugin.scoring import __all__  # noqa: F401
