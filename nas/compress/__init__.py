"""``python -m nas.compress``: quantize, prune and distil a detector, measured stage by stage.

Needs the ``[deploy]`` extra. See ``nas.compress.pipeline`` for what each stage does and
``nas.compress.__main__`` for the command line.
"""

from __future__ import annotations
