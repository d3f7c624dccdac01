"""Every error rotobridge raises on purpose.

One root (`RotobridgeError`) so hosts and the CLI can turn any of them into a message a
compositor can act on in exactly one place. Each class has a stable `name` used on the wire
and as the CLI's error label; messages say what is wrong and what to do.
Stdlib only: the host side imports this module too.
"""

from __future__ import annotations


class RotobridgeError(Exception):
    """Root of every deliberate rotobridge error."""

    name = "error"
    #: process exit status the CLI uses for this kind of error
    exit_code = 1


class RecipeError(RotobridgeError):
    """A recipe (or the recipe part of a request) is malformed; `field` names the culprit."""

    name = "bad_recipe"
    exit_code = 2

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class PlateError(RotobridgeError):
    """The plate cannot be read as asked (format, channels, layer, part)."""

    name = "bad_plate"
    exit_code = 3


class MissingFrameError(PlateError):
    """A frame of the requested range is not on disk."""

    name = "missing_frame"

    def __init__(self, frame: int, path: str) -> None:
        self.frame = frame
        self.path = path
        super().__init__(f"plate frame {frame} is missing: {path}")


class ColourError(RotobridgeError):
    """Colour configuration problem: unknown config, colourspace, display or view."""

    name = "bad_colour"
    exit_code = 4


class ModelError(RotobridgeError):
    """The model cannot be built or its checkpoint does not fit the config."""

    name = "bad_model"
    exit_code = 5


class CheckpointDownloadError(ModelError):
    """An official checkpoint could not be fetched or failed its checksum."""

    name = "checkpoint_download"


class IntegrityError(ModelError):
    """An installed dependency (sam2) differs from the version rotobridge was verified with."""

    name = "integrity"


class MatteExistsError(RotobridgeError):
    """Mattes would be overwritten and the caller did not ask for that."""

    name = "matte_exists"
    exit_code = 6

    def __init__(self, paths: list[str]) -> None:
        self.paths = list(paths)
        shown = ", ".join(self.paths[:3]) + (" …" if len(self.paths) > 3 else "")
        super().__init__(
            f"{len(self.paths)} matte file(s) already exist ({shown}); "
            "pass --overwrite (or overwrite: true) to replace them"
        )


class OutputError(RotobridgeError):
    """A matte could not be written."""

    name = "output_failed"
    exit_code = 7


class PathNotAllowedError(RotobridgeError):
    """A path lies outside the configured root folders."""

    name = "path_not_allowed"
    exit_code = 8


class ConfigError(RotobridgeError):
    """The bridge's configuration (file, environment or command line) is invalid; the message names the key."""

    name = "bad_config"
    exit_code = 2


class ProtocolError(RotobridgeError):
    """A message does not follow the wire protocol (docs/protocol.md).

    `name` is the protocol error name to answer with (bad_message, unknown_type,
    version_mismatch); `request_id` is the offending request's id when it could be read.
    """

    name = "bad_message"

    def __init__(self, message: str, *, name: str | None = None, request_id: str | None = None) -> None:
        if name is not None:
            self.name = name
        self.request_id = request_id
        super().__init__(message)


class SessionError(RotobridgeError):
    """A request names a session or state the bridge does not have (unknown_session, busy, not_tracked)."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(message)


class BridgeError(RotobridgeError):
    """The bridge answered a request with an error; `name` is the protocol's stable error name."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(message)


class BridgeUnreachableError(RotobridgeError):
    """No answer from the bridge in time: it is down, unreachable, or refused our key."""

    name = "bridge_unreachable"


class CancelledError(RotobridgeError):
    """The user cancelled the operation."""

    name = "cancelled"
    exit_code = 130


class PromptError(RotobridgeError):
    """A host-side prompt edit cannot be done: unknown object, a point outside the image."""

    name = "bad_prompt"


class HostError(RotobridgeError):
    """The host's scene is not set up the way rotobridge needs; the message says what to change."""

    name = "host_setup"
