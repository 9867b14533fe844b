"""The one exception hierarchy of tvmedge. Imports nothing, so the board-side runtime can use it.

Every message is one line that names the bad thing and says what to do. The CLI prints
``Error: <message>`` on stderr and exits with ``exit_code``; anything that is not a
:class:`TvmedgeError` is a bug and keeps its traceback.
"""

__all__ = [
    "first_line",
    "TvmedgeError",
    "ConfigError",
    "ModelError",
    "UnsupportedOpError",
    "ShapeInputError",
    "PartitionError",
    "TuningError",
    "ToolchainError",
    "BuildError",
    "ArtifactError",
    "InputError",
    "ServeError",
    "HardwareError",
]


def first_line(err: BaseException, limit: int = 300) -> str:
    """The line of an exception's text that says what went wrong (third-party errors are often pages long):
    the first non-empty line, or the last one when the text is a traceback (errors re-raised from a worker
    process carry one, with the error itself at the end)."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    if not lines:
        return type(err).__name__[:limit]
    return (lines[-1] if lines[0].startswith("Traceback") else lines[0])[:limit]


class TvmedgeError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(TvmedgeError):
    """Bad configuration, e.g. ``unknown board 'rk3599'; choose from: rk3588, rpi5, x86-host``."""


class ModelError(TvmedgeError):
    """An unreadable or invalid model, e.g. ``model.onnx is not a valid ONNX file (truncated protobuf)``."""


class UnsupportedOpError(ModelError, NotImplementedError):
    """Ops TVM's importer lacks, all listed at once, e.g. ``TVM cannot import 2 op(s): LSTM (x1), Scan (x2)``."""

    def __init__(self, message, ops=None):
        super().__init__(message)
        self.ops = dict(ops or {})


class ShapeInputError(ModelError):
    """Inputs whose values must be known at compile time, all listed, e.g. ``input(s) 'axes' (ReduceSum 'r'
    operand 1) set shapes ...; freeze them: --freeze-input axes=VALUE``; ``inputs``: name -> where it is used."""

    def __init__(self, message, inputs=None):
        super().__init__(message)
        self.inputs = dict(inputs or {})


class PartitionError(TvmedgeError):
    """No valid placement, e.g. ``op Conv_3 is supported by no compute unit of board rk3588``."""


class TuningError(TvmedgeError):
    """Tuning failed, e.g. ``tuning database tuning_logs/x86 is corrupt: line 3 is not JSON``."""


class ToolchainError(TvmedgeError):
    """A missing tool, e.g. ``aarch64-linux-gnu-g++ not found; install the Debian package g++-aarch64-linux-gnu``."""


class BuildError(TvmedgeError):
    """Building failed, e.g. ``TVM could not build the model for aarch64: <first line of the cause>``.

    ``detail`` keeps the failing command line / full stderr for ``--debug``.
    """

    def __init__(self, message, detail=""):
        super().__init__(message)
        self.detail = detail


class ArtifactError(TvmedgeError):
    """A bad artifact, e.g. ``out/model.so does not match its manifest sha256 (tampered or corrupt)``."""


class InputError(TvmedgeError):
    """Bad run-time input, e.g. ``input 'x': expected shape (1, 3, 32, 32) float32, got (1, 3, 32) float32``."""


class ServeError(TvmedgeError):
    """The model service refused a request or a setting, e.g. ``model 'resnet' is being unloaded; retry later``.

    ``status`` is the HTTP status the service answers with (409 not loaded, 503 draining, 404 unknown, ...).
    """

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


class HardwareError(TvmedgeError):
    """A hardware interface is absent or not writable, e.g. ``no thermal zones under /sys/class/thermal``."""


class DeployError(TvmedgeError):
    """Shipping to a board failed, e.g. ``tiny/model.so arrived corrupted at pi@board:/opt/models (sha256 differs)``."""
