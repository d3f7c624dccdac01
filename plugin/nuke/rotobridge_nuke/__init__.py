"""rotobridge in Nuke: the RotoBridge node, its `Host` adapter and its panel.

Importing this package only makes its dependencies importable, which is all `init.py`
needs in every Nuke session (GUI, `nuke -t`, `nuke -x`): the folder holding the host
core's `rotobridge` package (plugin/src, and nothing else of plugin/) and the pyzmq vendored for this Python by
install/install_nuke.py (plugin/nuke/lib/py3.X), when there is one. Nothing else loads
until a RotoBridge node is created or used.
"""

from __future__ import annotations

import os
import sys

NUKE_FOLDER = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORE_FOLDER = os.path.join(os.path.dirname(NUKE_FOLDER), "src")
VENDOR_FOLDER = os.path.join(NUKE_FOLDER, "lib", f"py{sys.version_info[0]}.{sys.version_info[1]}")

for _path in (CORE_FOLDER, VENDOR_FOLDER):
    if os.path.isdir(_path) and _path not in sys.path:
        sys.path.insert(0, _path)
