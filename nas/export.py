"""``python -m nas.export``: a searched architecture as a model YAML (+ weights if kept).

The implementation is part of the search: ``nas.search.export``.
"""

from __future__ import annotations

from nas.search.export import main

if __name__ == "__main__":
    raise SystemExit(main())
