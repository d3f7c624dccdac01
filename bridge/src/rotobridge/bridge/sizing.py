"""How much of the machine the pipeline around SAM 2 uses: threads, read-ahead memory, OIIO threading.

On a GPU the model is ~11 ms a frame, so reading, colour, upsampling and writing set the
speed: their pools are sized from the cores this process may run on (not the machine's),
read-ahead is bounded by memory rather than a frame count (a UHD plate frame is 4x an HD
one), and OpenImageIO's own threads are set once, here, so decode and write pools do not
each start a thread per core on top of themselves. Every value can be set in the
environment (`rotobridge render`, farm jobs) or the bridge's configuration file
(`rotobridge serve`, config.py); docs/performance.md describes them.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Mapping

from rotobridge.errors import ConfigError

#: Setting → environment variable (the bridge configuration file uses the setting's name).
ENVIRONMENT: Mapping[str, str] = {
    "decode_threads": "ROTOBRIDGE_DECODE_THREADS",
    "write_threads": "ROTOBRIDGE_WRITE_THREADS",
    "read_ahead_mib": "ROTOBRIDGE_READ_AHEAD_MIB",
}
#: Read-ahead memory when none is set: 24 model frames at 1024² float32, the decode buffers included.
DEFAULT_READ_AHEAD_MIB = 512
#: The most decode or write threads chosen by default, however many cores (EXR I/O stops scaling).
_MAX_DEFAULT_THREADS = 8


def cores() -> int:
    """Cores this process may run on (a farm slot's CPU set, not the whole machine)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Sizing:
    """Pool sizes and the read-ahead budget; 0 threads means "from the cores"."""

    decode_threads: int = 0
    write_threads: int = 0
    read_ahead_mib: int = DEFAULT_READ_AHEAD_MIB

    def __post_init__(self) -> None:
        for name in ("decode_threads", "write_threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name}: must be a whole number of threads >= 0 (0: from the cores), got {value!r}")
        if isinstance(self.read_ahead_mib, bool) or not isinstance(self.read_ahead_mib, int) or self.read_ahead_mib < 1:
            raise ConfigError(f"read_ahead_mib: must be a whole number of MiB >= 1, got {self.read_ahead_mib!r}")

    @property
    def decoders(self) -> int:
        """Decode threads: one per core (reading and colour are the CPU's main work)."""
        return self.decode_threads or min(cores(), _MAX_DEFAULT_THREADS)

    @property
    def writers(self) -> int:
        """Matte writing threads: half the cores, at least one (a matte costs less than a plate frame)."""
        return self.write_threads or max(1, min(cores() // 2, _MAX_DEFAULT_THREADS))

    def read_ahead(self, plate_bytes: int, frame_bytes: int) -> int:
        """Frames to decode ahead within the budget: every decoder holds a plate frame while it
        works; each frame read ahead holds its model input. At least one."""
        budget = self.read_ahead_mib * 2**20 - self.decoders * plate_bytes
        return max(1, budget // max(1, frame_bytes))


def from_environment(env: Mapping[str, str] | None = None) -> Sizing:
    """The settings in the environment; ConfigError naming the variable for a bad value."""
    env = os.environ if env is None else env
    values: dict[str, int] = {}
    for key, var in ENVIRONMENT.items():
        text = env.get(var)
        if not text:
            continue
        try:
            values[key] = int(text)
        except ValueError:
            raise ConfigError(f"${var}: {text!r} is not a whole number") from None
        try:
            Sizing(**{key: values[key]})
        except ConfigError as exc:
            raise ConfigError(f"${var}: {exc}") from None
    return Sizing(**values)


_configured: Sizing | None = None


def configure(sizing: Sizing | None) -> None:
    """Set the process's sizing (`rotobridge serve`, from its configuration); None: the environment's."""
    global _configured
    _configured = sizing


def current() -> Sizing:
    """The sizing `configure` set, else the environment's."""
    return _configured if _configured is not None else from_environment()


_oiio_lock = threading.Lock()
_oiio_threads: int | None = None


def configure_openimageio(threads: int | None = None) -> int:
    """Set OpenImageIO's threading once per process: its pool (`threads`) and OpenEXR's
    (`exr_threads`, which decompresses and compresses a file's blocks in parallel) to the
    cores. The decode and write pools then run a few files at once, each file's blocks
    spread over the same shared threads, instead of one file per core with idle cores
    at the end of a shot. Returns the thread count set."""
    import OpenImageIO as oiio  # here: config.py, which the CLI imports at start, imports this module

    global _oiio_threads
    with _oiio_lock:
        count = threads or cores()
        if _oiio_threads != count:
            oiio.attribute("threads", count)
            oiio.attribute("exr_threads", count)
            _oiio_threads = count
        return count
