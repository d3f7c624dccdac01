# rotobridge for Nuke, GUI sessions only (Nuke runs menu.py nowhere else): the node's menu
# entry, the panel, and closing bridge sessions together with their script.
import sys

import nuke
import nukescripts.panels


def _release_sessions():
    adapter = sys.modules.get("rotobridge_nuke.adapter")  # loaded once a node was used
    if adapter is not None:
        adapter.release_all()


nuke.menu("Nodes").addCommand("RotoBridge/RotoBridge", "import rotobridge_nuke.node; rotobridge_nuke.node.create()")
nukescripts.panels.registerWidgetAsPanel(
    "__import__('rotobridge_nuke.panel', fromlist=['make_panel']).make_panel", "RotoBridge", "io.rotobridge.panel"
)
nuke.addOnScriptClose(_release_sessions)
