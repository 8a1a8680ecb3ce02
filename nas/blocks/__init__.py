"""The block library. Importing this package registers every shipped block.

Each module below registers its blocks with ``@register_block``; to add a block, write a module
and import it here (or anywhere before building: the registry is open to user code too).
"""

from nas.blocks import afpn, conv, csp, downsample, ghost, head, pconv, timm_backbone  # noqa: F401
from nas.blocks.registry import block_names, create_block, get_block, register_block

__all__ = ["block_names", "create_block", "get_block", "register_block"]
