"""The workspace root's build backend: it refuses, saying what to install instead.

The top-level pyproject.toml names rotobridge's two distributions; it is not one itself.
Without this, `pip install .` would build an empty package and look like it worked.
"""

from __future__ import annotations

from typing import Any

_ADVICE = (
    "the rotobridge checkout root is a workspace, not a package: install its two distributions, "
    "`pip install ./plugin` (the host core) and `pip install ./plugin ./bridge` (the bridge and the "
    "`rotobridge` command, after torch and sam2), or run `bash install/setup.sh`, which does it all"
)


def _refuse(*_: Any, **__: Any) -> str:
    raise SystemExit(_ADVICE)


build_wheel = build_sdist = build_editable = _refuse
get_requires_for_build_wheel = get_requires_for_build_sdist = get_requires_for_build_editable = _refuse
prepare_metadata_for_build_wheel = prepare_metadata_for_build_editable = _refuse
