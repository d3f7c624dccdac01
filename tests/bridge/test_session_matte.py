"""Matte controls in a live session: `matte` re-previews any tracked frame from kept logits
without running the model, bad controls are refused naming the field, export carries them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import pytest
import torch

from rotobridge import recipe as recipes
from rotobridge.bridge.colour import ColourPipeline
from rotobridge.bridge.engine import Engine
from rotobridge.bridge.logitstore import LogitStore
from rotobridge.bridge.mattes import upsample_logits
from rotobridge.bridge.plate import open_plate
from rotobridge.controls import MatteControls

from .conftest import COLOURSPACE, shot
from .wire import Peer, preview_planes

CAR = {"id": 1, "name": "car"}
PERSON = {"id": 7, "name": "person"}
CAR_CLICKS = {"points": [[20, 20], [50, 30]], "labels": [1, 0]}
PERSON_BOX = [30, 10, 60, 40]


def _count_model_calls(monkeypatch: pytest.MonkeyPatch, predictor: Any) -> dict[str, int]:
    """Count sam2's model passes: image encoding and every tracking step (clicks, propagation)."""
    calls = {"forward_image": 0, "track_step": 0}
    for name in calls:
        original: Callable[..., Any] = getattr(predictor, name)

        def counted(*args: Any, _name: str = name, _original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(predictor, name, counted)
    return calls


def _raw(logits: torch.Tensor, height: int, width: int) -> np.ndarray:
    """SAM 2's matte as a 0-255 plane: logits upsampled as sam2 does, then the sigmoid."""
    return np.round(torch.sigmoid(upsample_logits(logits, height, width))[0, 0].numpy() * 255).astype(np.int16)


def test_controls_re_preview_tracked_frames_without_the_model_and_travel_in_the_export(
    start_bridge: Any, tmp_path: Path, loaded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_bridge(tmp_path)
    peer = Peer(server.endpoint)
    fields = shot(tmp_path, frames=6)
    session = peer.ok("open", **fields)["session"]
    peer.ok("prompt", session=session, object=CAR, frame=1003, **CAR_CLICKS)
    peer.ok("prompt", session=session, object=PERSON, frame=1003, box=PERSON_BOX)
    assert peer.error("matte", session=session, object_id=1, controls={}, frame=1005)[0] == "not_tracked"
    assert peer.ok("export", session=session)["recipe"]["objects"][0]["matte"] == MatteControls().to_json()  # set all the same
    peer.ok("matte", session=session, object_id=1, frame=1003)  # no controls: SAM 2's raw matte again
    rid = peer.send("propagate", session=session, start=1001, end=1006, direction="both")
    assert peer.finished(rid)["status"] == "done"

    # the same tracking, by an engine of its own: the logits the session must have kept
    plate = open_plate(fields["plate"]["path"], "1001-1006")
    engine = Engine(loaded, plate, ColourPipeline(COLOURSPACE))
    engine.add_points(1003, 1, **CAR_CLICKS)
    engine.add_points(1003, 7, box=PERSON_BOX)
    tracked = {out.frame: out for out in engine.propagate(1003, 1006)}
    engine.close()
    plate.close()
    raw = {oid: _raw(tracked[1005].logits[row : row + 1], 48, 64) for row, oid in enumerate(tracked[1005].obj_ids)}

    calls = _count_model_calls(monkeypatch, loaded.predictor)
    shown = preview_planes(peer.call("preview", session=session, frame=1005))  # tracked, not prompted
    assert list(shown) == [1, 7]
    for oid in shown:  # kept in half precision: at most one level of 255 off
        assert np.abs(shown[oid] - raw[oid]).max() <= 1

    grow = {"refine": 0, "smoothing": 0, "shrink_grow": 3}
    reply = peer.call("matte", session=session, object_id=1, controls=grow, frame=1005)
    assert reply["result"]["preview"] == {"frame": 1005, "width": 64, "height": 48, "objects": [1, 7], "format": "u8"}
    planes = preview_planes(reply)
    grown = cv2.dilate(raw[1].astype(np.float32), np.ones((7, 7), np.uint8), borderType=cv2.BORDER_REPLICATE)
    assert np.abs(planes[1] - grown).max() <= 1  # a 64x48 plate previews at full size: 3 pixels stay 3
    assert np.abs(planes[7] - raw[7]).max() <= 1  # the other object keeps its raw matte
    assert preview_planes(peer.call("preview", session=session, frame=1005))[1].tolist() == planes[1].tolist()
    refined = preview_planes(peer.call("matte", session=session, object_id=7, controls={"despeckle": 40}, frame=1002))
    assert list(refined) == [1, 7] and refined[7].shape == (48, 64)
    assert calls == {"forward_image": 0, "track_step": 0}, "a control change ran the model"

    objects = peer.ok("export", session=session)["recipe"]
    assert objects[recipes.VERSION_KEY] == 2
    car, person = recipes.parse(objects).objects
    assert car.matte == MatteControls(refine=0, smoothing=0, shrink_grow=3)
    assert person.matte == MatteControls(despeckle=40)
    assert peer.ok("attach", session=session)["objects"][0]["matte"] == car.matte.to_json()

    # a click keeps the object's controls and drops its kept logits: they no longer follow from its prompts
    peer.ok("prompt", session=session, object=CAR, frame=1003, points=[[22, 20]], labels=[1])
    assert calls["track_step"] > 0  # the counter sees model passes
    assert list(preview_planes(peer.call("preview", session=session, frame=1005))) == [7]
    peer.ok("matte", session=session, object_id=1, frame=1003)  # no controls: back to the raw matte
    exported = peer.ok("export", session=session)["recipe"]
    assert [o.get("matte") for o in exported["objects"]] == [None, MatteControls(despeckle=40).to_json()]
    peer.close()


BAD: list[tuple[dict[str, Any], tuple[str, str]]] = [
    ({"object_id": 1, "controls": {"feather": -1}}, ("bad_recipe", "controls.feather: is a radius in pixels")),
    ({"object_id": 1, "controls": {"clip_black": 0.9, "clip_white": 0.5}}, ("bad_recipe", "controls.clip_black: must be below")),
    ({"object_id": 1, "controls": {"blur": 2}}, ("bad_recipe", "controls.blur: ")),
    ({"object_id": 1, "controls": {"refine_radius": -4}}, ("bad_recipe", "controls.refine_radius: ")),
    ({"object_id": 9, "controls": {}}, ("bad_recipe", "object_id: the session has no object 9")),
    ({"object_id": 1, "controls": [1]}, ("bad_message", "controls: must be dict")),
    ({"object_id": 1, "controls": {}, "frame": 999}, ("bad_recipe", "frame: frame 999 is not in the plate")),
]


def test_bad_controls_are_refused_naming_the_field_and_change_nothing(start_bridge: Any, tmp_path: Path) -> None:
    server = start_bridge(tmp_path)
    peer = Peer(server.endpoint)
    session = peer.ok("open", **shot(tmp_path, frames=3))["session"]
    peer.ok("prompt", session=session, object=CAR, frame=1001, **CAR_CLICKS)
    peer.ok("matte", session=session, object_id=1, controls={"feather": 2}, frame=1001)
    for fields, (name, start) in BAD:
        got, message = peer.error("matte", session=session, **{"frame": 1001, **fields})
        assert got == name and message.startswith(start), message
    [car] = peer.ok("export", session=session)["recipe"]["objects"]
    assert car["matte"] == MatteControls(feather=2).to_json()
    peer.close()


def test_matte_is_refused_while_propagating(start_bridge: Any, tmp_path: Path) -> None:
    server = start_bridge(tmp_path)
    peer = Peer(server.endpoint)
    session = peer.ok("open", **shot(tmp_path, frames=30))["session"]
    peer.ok("prompt", session=session, object=CAR, frame=1001, **CAR_CLICKS)
    rid = peer.send("propagate", session=session, start=1001, end=1030, direction="forward")
    assert peer.reply(rid)["ok"]
    assert peer.error("matte", session=session, object_id=1, controls={"feather": 1}, frame=1001)[0] == "busy"
    peer.ok("cancel", session=session)
    peer.finished(rid)
    assert "matte" not in peer.ok("export", session=session)["recipe"]["objects"][0]
    peer.close()


def test_the_store_is_bounded_drops_the_oldest_first_and_forgets_an_object() -> None:
    row = 16 * 16 * 2  # one object's 16x16 logits in half precision
    store = LogitStore(limit=5 * row)
    for frame in (1, 2, 3):
        store.put(frame, (1, 7), torch.full((2, 1, 16, 16), float(frame)))
    assert store.bytes == 5 * row  # 6 rows would pass the limit: the oldest one went
    assert store.get(1, 1) is None and store.get(1, 7) is not None
    kept = store.get(2, 7)
    assert kept is not None and kept.dtype == torch.float32 and kept.shape == (1, 1, 16, 16) and float(kept.max()) == 2.0
    store.put(2, (1,), torch.full((1, 1, 16, 16), 9.5))  # tracked again: replaced, not added
    assert store.bytes == 5 * row and float(store.get(2, 1).max()) == 9.5  # type: ignore[union-attr]
    store.forget(7)
    assert store.bytes == 2 * row and store.get(3, 7) is None and store.get(3, 1) is not None
