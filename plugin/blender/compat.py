"""What differs between the Blender versions the extension supports, 4.5 LTS to 5.2 LTS.

Detected by capability, never by version number, and only here, so the rest of the
add-on reads the same on every version:
- the compositor: 4.5 has `scene.use_nodes` + `scene.node_tree` with a Composite node;
  5.0 removed both, and a scene's compositor is a `CompositorNodeTree` node group
  (`scene.compositing_node_group`) whose Group Output has an Image socket;
- Set Alpha's mode: a property (`mode = "APPLY"`) in 4.5, an input socket
  (`inputs["Type"]`, "Apply Mask") from 5.0;
- overlay drawing: points with the POINT_UNIFORM_COLOR shader and lines as LINES, which
  4.5 and 5.x both have (TRI_FAN, LINE_LOOP and points with UNIFORM_COLOR are deprecated).
"""

from __future__ import annotations

from typing import Any

import bpy

#: The compositor output socket a group tree gets (5.0+), as Blender names it by default.
OUTPUT_SOCKET = "Image"


def compositor(scene: bpy.types.Scene, create: bool = True) -> Any:
    """The scene's compositor node tree (made and switched on with `create`), or None.

    A compositor turned on here starts empty: 4.5 makes a default Render Layers node,
    which goes (the picture is the plate; rendering the 3D scene is not wanted).
    """
    if hasattr(scene, "compositing_node_group"):  # Blender 5.0+
        tree = scene.compositing_node_group
        if tree is None and create:
            tree = bpy.data.node_groups.new(f"{scene.name} Compositor", "CompositorNodeTree")
            scene.compositing_node_group = tree
        return tree
    if not scene.use_nodes and not create:
        return None
    fresh = not scene.use_nodes and scene.node_tree is None
    scene.use_nodes = True
    tree = scene.node_tree
    if fresh:
        for node in [n for n in tree.nodes if n.bl_idname in {"CompositorNodeRLayers", "NodeReroute"}]:
            tree.nodes.remove(node)
    return tree


def output_input(tree: Any, location: tuple[int, int] = (0, 0)) -> Any:
    """The input socket of the compositor's output (what a render writes), made if missing."""
    if hasattr(bpy.types, "CompositorNodeComposite"):  # Blender 4.5
        return _first(tree, "CompositorNodeComposite", location).inputs["Image"]
    outputs = [i.name for i in tree.interface.items_tree if i.item_type == "SOCKET" and i.in_out == "OUTPUT"]
    if OUTPUT_SOCKET not in outputs:
        tree.interface.new_socket(OUTPUT_SOCKET, in_out="OUTPUT", socket_type="NodeSocketColor")
    return _first(tree, "NodeGroupOutput", location).inputs[OUTPUT_SOCKET]


def apply_mask(set_alpha: Any) -> None:
    """A Set Alpha node that replaces the image's alpha by the mask."""
    if "Type" in set_alpha.inputs:
        set_alpha.inputs["Type"].default_value = "Apply Mask"
    else:
        set_alpha.mode = "APPLY"


def _first(tree: Any, kind: str, location: tuple[int, int]) -> Any:
    node = next((n for n in tree.nodes if n.bl_idname == kind), None)
    if node is None:
        node = tree.nodes.new(kind)
        node.location = location
    return node
