"""`synthesis_options` under its former address; it lives in `ganscapes.device` now.

Kept only so that `gan.metrics`, which still imports it from here, keeps working; once
that import names `ganscapes.device`, this module can go.
"""

from ganscapes.device import synthesis_options

__all__ = ["synthesis_options"]
