"""The host-behaviour suite every host adapter runs, in the manner of OpenAssetIO's API
compliance suite: the same tests, once per host.

An adapter's test module (test_nuke.py; Blender's: tests/blender/test_host_suite.py)
provides a `host` fixture that returns a `HostHarness` on a fresh scene: a plate of `PLATE`
(2048x858, frames 1001-1010, ACEScg, at PLATE_PATH), one RotoBridge node or panel on it
whose controller connects through `FakeClients` (fake_client.py), and mattes written to
MATTES. Those are the host's paths, and with no path mapping the bridge's too. Then
`from .host_suite import *` collects the tests below for that host. Each test speaks in
plate pixels, frames and these paths; the harness turns them into the host's own
gestures, coordinates and folders, so the adapter's conversions are under test too.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Protocol

from rotobridge import recipe
from rotobridge.prompts import PromptModel

from .fake_client import FakeClients

PLATE_PATH = "/shots/sh010/plate/sh010.####.exr"
PLATE = (2048, 858)
FRAMES = (1001, 1010)
MATTES = "/shots/sh010/mattes/sh010_sam.####.exr"


class HostHarness(Protocol):
    """What an adapter's test module implements to run the suite."""

    #: the client factory the node's controller uses
    fake: FakeClients
    #: the host's main thread
    main_thread: int

    def connect(self, wait: bool = True) -> None:
        """Connect and open the shot as the artist does; with `wait`, until the session is open."""

    def map_paths(self, host_folder: str, bridge_folder: str) -> None:
        """Set the host's path mapping as the artist does: `host_folder` (a folder of the host's
        paths above) is `bridge_folder` on the bridge's machine."""

    def add_object(self, name: str) -> int:
        """Add an object as the artist does; its id."""

    def click(self, object_id: int, frame: int, x: float, y: float, positive: bool = True) -> None:
        """Put a point at plate pixel (x, y) on `frame`, the way an artist does in this host."""

    def propagate(self, direction: str) -> None: ...

    def request_cancel(self) -> None:
        """The artist asks to stop tracking (the host may act on it at the next progress event)."""

    def export(self, path: str) -> None:
        """Export the recipe to `path` as the artist does."""

    def pump(self, until: Callable[[], bool], timeout: float = 5.0) -> None:
        """Run the host's main-thread event loop until `until()` holds."""

    def stored(self) -> str:
        """The serialised prompt model, read from where the host keeps it."""

    def reload(self) -> HostHarness:
        """Save the scene, open it in a fresh session (new controller, new FakeClients)."""

    def errors(self) -> list[str]:
        """Error texts the host showed the artist."""

    def previews(self) -> list[tuple[int, int]]:
        """(thread, frame) of each preview the host showed."""

    def progress(self) -> list[float]:
        """Fractions done that the host's progress display showed."""

    def mattes_shown(self) -> tuple[str, int, int] | None:
        """The matte sequence and frame range the host's matte reader now reads."""


def _ready(host: HostHarness) -> int:
    host.connect()
    return host.add_object("car")


def _prompt_calls(host: HostHarness) -> int:
    return len(host.fake.last.called("prompt"))


def _same_points(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
    """Equal within a thousandth of a pixel: Blender keeps clip positions as 32-bit floats."""
    return len(a) == len(b) and all(abs(p - q) < 1e-3 for pa, pb in zip(a, b) for p, q in zip(pa, pb))


def _wait_for_points(host: HostHarness, points: list[tuple[float, float]], obj: int | None = None) -> None:
    """Until the bridge has the object's clicks (a host may send a click in several steps).

    With several objects, name the one: their prompts travel independently, so the last prompt
    sent may be another object's.
    """

    def sent() -> bool:
        calls = [c for c in host.fake.last.called("prompt") if obj is None or c.args["object"]["id"] == obj]
        return bool(calls) and _same_points(calls[-1].args["points"], points)

    host.pump(sent)


def test_click_stores_the_prompt_in_the_host_and_sends_it(host: HostHarness) -> None:
    car = _ready(host)
    host.click(car, 1003, 412.5, 220.25)
    host.click(car, 1003, 100.0, 80.0, positive=False)
    _wait_for_points(host, [(412.5, 220.25), (100.0, 80.0)])
    stored = PromptModel.loads(host.stored())
    assert stored.prompt(car, 1003) == recipe.Prompt(1003, ((412.5, 220.25), (100.0, 80.0)), (1, 0))
    sent = host.fake.last.called("prompt")[-1].args
    assert (sent["object"]["name"], sent["frame"], sent["points"], sent["labels"]) == (
        "car", 1003, [(412.5, 220.25), (100.0, 80.0)], [1, 0]
    )
    assert host.errors() == []


def test_previews_arrive_on_the_main_thread_only(host: HostHarness) -> None:
    car = _ready(host)
    host.click(car, 1001, 10.0, 10.0)
    host.pump(lambda: bool(host.previews()))
    assert host.previews() and {thread for thread, _ in host.previews()} == {host.main_thread}
    assert host.previews()[-1][1] == 1001
    assert all(c.thread != host.main_thread for c in host.fake.last.called("prompt"))  # the UI never waited


def test_propagation_shows_progress_cancels_and_reloads_the_mattes(host: HostHarness) -> None:
    car = _ready(host)
    host.click(car, 1001, 10.0, 10.0)
    host.propagate("forward")
    host.pump(lambda: host.fake.last.job is not None)
    host.fake.last.step(3)
    host.pump(lambda: len(host.progress()) == 3)
    assert host.progress() == [0.1, 0.2, 0.3]
    host.request_cancel()
    if host.fake.last.job is not None:  # hosts that notice a cancel at the next event
        host.fake.last.step()
    host.pump(lambda: host.mattes_shown() is not None)
    assert host.fake.last.called("cancel") and host.fake.last.job is None
    assert host.mattes_shown() == (MATTES, *FRAMES)
    host.propagate("forward")  # a rerun replaces the mattes it wrote itself
    host.pump(lambda: host.fake.last.job is not None)
    assert host.fake.last.called("propagate")[-1].args["overwrite"] is True
    assert host.errors() == []


def test_a_saved_scene_reopens_with_exactly_its_prompts(host: HostHarness) -> None:
    car = _ready(host)
    person = host.add_object("person")
    host.click(car, 1001, 412.5, 220.25)
    host.click(car, 1001, 0.1, 857.9, positive=False)
    host.click(person, 1007, 2048.0, 0.0)
    _wait_for_points(host, [(412.5, 220.25), (0.1, 857.9)], car)
    _wait_for_points(host, [(2048.0, 0.0)], person)
    before = PromptModel.loads(host.stored())
    again = host.reload()
    assert PromptModel.loads(again.stored()).objects == before.objects
    again.connect()
    again.pump(lambda: _prompt_calls(again) == 2)
    replayed = {(c.args["object"]["id"], c.args["frame"]): (c.args["points"], c.args["labels"]) for c in again.fake.last.called("prompt")}
    assert replayed == {
        (o.id, p.frame): (list(p.points), list(p.labels)) for o in before.objects for p in o.prompts
    }
    assert again.errors() == []


def test_exported_recipe_loads_back_equal(host: HostHarness, tmp_path: Path) -> None:
    car = _ready(host)
    host.click(car, 1003, 412.5, 220.25)
    _wait_for_points(host, [(412.5, 220.25)])
    path = tmp_path / "sh010.recipe.json"
    host.export(str(path))
    loaded = recipe.load(path)
    assert loaded.objects == PromptModel.loads(host.stored()).objects
    assert (loaded.plate.path, loaded.plate.frames, loaded.plate.colourspace) == (PLATE_PATH, "1001-1010", "ACEScg")
    assert loaded.output.path == MATTES and loaded.model == recipe.Model(name="sam2.1-hiera-tiny")
    assert host.errors() == []


def test_mapped_folders_reach_the_bridge_and_the_mattes_load_from_the_host(host: HostHarness, tmp_path: Path) -> None:
    """A bridge that mounts the show elsewhere: it gets its own paths, the host reads its own."""
    host.map_paths("/shots/sh010/", "/mnt/gpu/shows/sh010")  # typed with a trailing separator
    car = _ready(host)
    (opened,) = host.fake.last.called("open")
    assert opened.args["plate"]["path"] == "/mnt/gpu/shows/sh010/plate/sh010.####.exr"
    assert opened.args["output"]["path"] == "/mnt/gpu/shows/sh010/mattes/sh010_sam.####.exr"
    host.click(car, 1001, 10.0, 10.0)
    host.propagate("forward")
    host.pump(lambda: host.fake.last.job is not None)
    job = host.fake.last.job
    assert job is not None
    host.fake.last.step(len(job.frames))
    host.fake.last.finish()
    host.pump(lambda: host.mattes_shown() is not None)
    assert host.mattes_shown() == (MATTES, *FRAMES)
    path = tmp_path / "sh010.recipe.json"
    host.export(str(path))  # a farm job runs where the bridge's paths are
    loaded = recipe.load(path)
    assert (loaded.plate.path, loaded.output.path) == (opened.args["plate"]["path"], opened.args["output"]["path"])
    assert host.errors() == []


def test_an_unreachable_bridge_is_reported_within_seconds(host: HostHarness) -> None:
    host.fake.reachable = False
    start = time.monotonic()
    host.connect(wait=False)
    host.pump(lambda: bool(host.errors()), timeout=3.0)
    assert time.monotonic() - start < 3.0
    (shown,) = host.errors()
    assert "Bridge unreachable" in shown and "rotobridge serve" in shown and host.fake.last.address in shown


__all__ = [name for name in dir() if name.startswith("test_")]
