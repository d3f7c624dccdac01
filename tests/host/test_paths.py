"""Host paths ↔ bridge paths (rotobridge.paths.PathMap): table-driven, each row a case a
mapping can get wrong."""

from __future__ import annotations

import pytest

from rotobridge.paths import PathMap

TO_BRIDGE = [
    # (host folder, bridge folder, host path) -> bridge path
    ("/Volumes/shows", "/mnt/shows", "/Volumes/shows/sh010/plate/sh010.####.exr", "/mnt/shows/sh010/plate/sh010.####.exr"),
    ("/Volumes/shows", "/mnt/shows", "/Volumes/shows", "/mnt/shows"),  # the folder itself
    ("/Volumes/shows", "/mnt/shows", "/Volumes/showsX/sh010.exr", "/Volumes/showsX/sh010.exr"),  # whole names only
    ("/Volumes/shows", "/mnt/shows", "/Volumes/show", "/Volumes/show"),
    ("/Volumes/shows", "/mnt/shows", "/elsewhere/Volumes/shows/a.exr", "/elsewhere/Volumes/shows/a.exr"),  # a prefix, not inside
    ("/Volumes/shows", "/mnt/shows", "relative/Volumes/shows", "relative/Volumes/shows"),
    ("/Volumes/shows/", "/mnt/shows/", "/Volumes/shows/sh010/a.exr", "/mnt/shows/sh010/a.exr"),  # trailing separators
    ("/Volumes/shows//", "/mnt/shows", "/Volumes/shows/a.exr", "/mnt/shows/a.exr"),
    ("  /Volumes/shows ", " /mnt/shows", "/Volumes/shows/a.exr", "/mnt/shows/a.exr"),  # typed with spaces
    ("/Volumes/Shows", "/mnt/shows", "/Volumes/shows/a.exr", "/Volumes/shows/a.exr"),  # POSIX names keep their case
    ("/shows", "/mnt/shows", "/shows/odd\\name.exr", "/mnt/shows/odd\\name.exr"),  # a POSIX name may hold a backslash
    # Windows workstations, Linux bridge
    ("S:\\shows", "/mnt/shows", "S:\\shows\\sh010\\sh010.####.exr", "/mnt/shows/sh010/sh010.####.exr"),
    ("S:\\shows", "/mnt/shows", "S:/shows/sh010/sh010.####.exr", "/mnt/shows/sh010/sh010.####.exr"),  # Nuke writes S:/
    ("S:/shows", "/mnt/shows", "S:\\shows\\sh010\\a.exr", "/mnt/shows/sh010/a.exr"),
    ("s:\\Shows\\", "/mnt/shows", "S:/shows/a.exr", "/mnt/shows/a.exr"),  # Windows ignores case
    ("S:\\shows", "/mnt/shows", "S:\\showsX\\a.exr", "S:\\showsX\\a.exr"),
    ("S:", "/mnt/s", "S:\\shows\\a.exr", "/mnt/s/shows/a.exr"),  # a whole drive
    ("S:\\", "/mnt/s", "S:/a.exr", "/mnt/s/a.exr"),
    ("\\\\server\\shows", "/mnt/shows", "\\\\server\\shows\\sh010\\a.exr", "/mnt/shows/sh010/a.exr"),  # UNC share
    # Linux workstation, Windows bridge
    ("/mnt/shows", "S:\\shows", "/mnt/shows/sh010/a.exr", "S:\\shows\\sh010\\a.exr"),
    ("/mnt/shows", "S:/shows", "/mnt/shows/sh010/a.exr", "S:/shows/sh010/a.exr"),
    # Windows both sides: the rest keeps its own separators
    ("S:\\shows", "\\\\server\\shows", "S:/shows/sh010/a.exr", "\\\\server\\shows/sh010/a.exr"),
]


@pytest.mark.parametrize(("host", "bridge", "path", "expected"), TO_BRIDGE)
def test_to_bridge(host: str, bridge: str, path: str, expected: str) -> None:
    assert PathMap(host, bridge).to_bridge(path) == expected


@pytest.mark.parametrize(("host", "bridge", "path", "expected"), TO_BRIDGE)
def test_to_host_is_the_same_mapping_the_other_way(host: str, bridge: str, path: str, expected: str) -> None:
    assert PathMap(bridge, host).to_host(path) == expected


UNSET = [("", ""), ("/Volumes/shows", ""), ("", "/mnt/shows"), ("  ", "/mnt/shows"), ("/", "/mnt"), ("\\", "/mnt")]


@pytest.mark.parametrize(("host", "bridge"), UNSET)
@pytest.mark.parametrize("path", ["/Volumes/shows/a.exr", "/mnt/shows/a.exr", "S:\\a.exr", "", "/"])
def test_unset_maps_nothing(host: str, bridge: str, path: str) -> None:
    paths = PathMap(host, bridge)
    assert paths.to_bridge(path) == path and paths.to_host(path) == path


def test_the_default_map_is_unset() -> None:
    assert PathMap().to_bridge("/Volumes/shows/a.exr") == "/Volumes/shows/a.exr"


ROUND_TRIPS = [
    # (host folder, bridge folder, host path): to_host(to_bridge(path)) == path
    ("/Volumes/shows", "/mnt/shows", "/Volumes/shows/sh010/mattes/sh010.####.exr"),
    ("/Volumes/shows/", "/mnt/shows", "/Volumes/shows/sh010/a.exr"),
    ("/Volumes/shows", "/mnt/shows", "/Volumes/showsX/a.exr"),  # outside: untouched both ways
    ("S:\\shows", "/mnt/shows", "S:\\shows\\sh010\\a.exr"),
    ("S:/shows", "/mnt/shows", "S:/shows/sh010/a.exr"),
    ("\\\\server\\shows", "/mnt/shows", "\\\\server\\shows\\a.exr"),
    ("/mnt/shows", "S:\\shows", "/mnt/shows/sh010/a.exr"),
]


@pytest.mark.parametrize(("host", "bridge", "path"), ROUND_TRIPS)
def test_round_trip(host: str, bridge: str, path: str) -> None:
    paths = PathMap(host, bridge)
    assert paths.to_host(paths.to_bridge(path)) == path


def test_a_bridge_path_outside_the_map_comes_back_unchanged() -> None:
    # mattes the artist pointed elsewhere on purpose: the host reads them where they are
    assert PathMap("/Volumes/shows", "/mnt/shows").to_host("/scratch/mattes/a.exr") == "/scratch/mattes/a.exr"


CONFIGS = [
    # (OCIO config as the host names it) -> as the bridge gets it
    ("/Volumes/shows/ocio/config.ocio", "/mnt/shows/ocio/config.ocio"),  # a file: mapped like any path
    ("/elsewhere/config.ocio", "/elsewhere/config.ocio"),
    ("ocio://studio-config-latest", "ocio://studio-config-latest"),  # OCIO's built-ins are no files
]


@pytest.mark.parametrize(("config", "expected"), CONFIGS)
def test_ocio_configs(config: str, expected: str) -> None:
    assert PathMap("/Volumes/shows", "/mnt/shows").config_to_bridge(config) == expected
