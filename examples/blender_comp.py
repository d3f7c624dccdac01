"""Render docs/images/blender_comp.png, the README's Blender picture, in real (headless) Blender.

    .venv-blender/bin/python examples/blender_comp.py [OUT.png]     # Blender 4.5 LTS
    .venv-blender5/bin/python examples/blender_comp.py [OUT.png]    # Blender 5.2 LTS

It reuses the Blender tests' set-up (tests/blender: build the extension, install it in a
throwaway Blender user folder) and their gestures: a generated 16-frame plate as a movie
clip, the add-on's Start Local Bridge (the bridge venv .venv, an UNTRAINED random tiny
checkpoint, since no weights can be downloaded here), a click on the bright square, tracking
both ways. The compositor is the add-on's wiring, plus one Mix node added here that tints
the plate by the matte (factor = matte × 0.6), rendered at frame 1005 to a PNG.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.blender import conftest, test_live  # noqa: E402  (builds and installs the extension)

import bpy  # noqa: E402


def main(out: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="rotobridge-blender-comp-"))
    checkpoint = root / "tiny_random.pt"
    test_live.bridge_python(
        "from rotobridge.bridge.model import make_random_checkpoint\n"
        f"make_random_checkpoint({test_live.TINY!r}, {str(checkpoint)!r}, seed=3)\n"
    )
    size = (320, 180)
    plate = conftest.write_plate(root / "plate", "sh010", range(1001, 1017), *size)
    shot = {
        "root": root, "plate": plate, "address": f"tcp://127.0.0.1:{test_live._free_port()}",
        "arguments": f"--root {root} --config-file {test_live.TINY} --checkpoint {checkpoint} "
        "--override ++model.image_size=256 --device cpu",
    }
    try:
        clip = test_live.open_shot(shot, "sh010", start=True)
        bpy.ops.rotobridge.object_add(name="square")
        test_live.click(clip, "square", 1005, size[0] * 0.46, size[1] * 0.5)
        test_live.track(clip, "both")
        scene = bpy.context.scene
        tree = conftest.compat.compositor(scene)
        plate_node = tree.nodes[conftest.comp.node_name(clip, "plate")]
        matte = tree.nodes[conftest.comp.node_name(clip, "square", "matte")]
        legacy = hasattr(bpy.types, "CompositorNodeMixRGB")  # Blender 4.5; 5.0 uses the shader nodes
        scale = tree.nodes.new("CompositorNodeMath" if legacy else "ShaderNodeMath")
        scale.operation, scale.inputs[1].default_value = "MULTIPLY", 0.6
        tint = tree.nodes.new("CompositorNodeMixRGB" if legacy else "ShaderNodeMix")
        if not legacy:
            tint.data_type = "RGBA"
        sockets = {s.identifier: s for s in (*tint.inputs, *tint.outputs) if s.enabled}
        factor, plate_in, colour_in, tinted = (
            (tint.inputs[0], tint.inputs[1], tint.inputs[2], tint.outputs[0])
            if legacy
            else (sockets["Factor_Float"], sockets["A_Color"], sockets["B_Color"], sockets["Result_Color"])
        )
        colour_in.default_value = (*clip.rotobridge.objects[0].colour, 1.0)
        tree.links.new(matte.outputs["square"], scale.inputs[0])
        tree.links.new(scale.outputs[0], factor)
        tree.links.new(plate_node.outputs["Image"], plate_in)
        tree.links.new(tinted, conftest.compat.output_input(tree))
        scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = *size, 100
        scene.render.image_settings.file_format, scene.render.image_settings.color_mode = "PNG", "RGB"
        scene.render.image_settings.compression = 100
        scene.frame_set(5)
        scene.render.filepath = str(out)
        bpy.ops.render.render(write_still=True)
    finally:
        conftest.adapter.release_all()
        conftest.adapter.local_bridge.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "images" / "blender_comp.png")
