"""Errors that the CLI turns into one-line messages (no traceback)."""


class G2DError(Exception):
    """Base class: an error the user can fix. The CLI prints ``g2d: <message>`` and exits 2."""


class ConfigError(G2DError):
    """A config key or value is wrong. The message names the file and the key."""


class DataError(G2DError):
    """An input file is missing, corrupt or inconsistent. The message names the file."""


class TrainingError(G2DError):
    """Training cannot continue (e.g. a non-finite loss)."""
