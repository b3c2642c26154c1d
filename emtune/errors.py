"""Errors a user can cause. The CLI prints their one-line message and exits 2; bugs keep tracebacks."""


class EmtuneError(Exception):
    """Base of every user-facing error; the message names the bad value and what is allowed."""


class ConfigError(EmtuneError):
    """The run config or a command-line override is invalid."""


class DataError(EmtuneError):
    """A prompt or benchmark source is missing, unreadable or malformed."""


class ModelError(EmtuneError):
    """A model path or hub id cannot be loaded."""


class TrainingError(EmtuneError):
    """Training cannot go on (bad batch geometry, a non-finite loss, ...)."""


class StoreError(EmtuneError):
    """A checkpoint store cannot be reached, or holds something incomplete or corrupt."""


class OutputError(EmtuneError):
    """An output path would destroy the user's files or one of the command's inputs, or cannot be written."""


class PipelineError(EmtuneError):
    """A pipeline cannot be submitted (KFP unreachable or refusing) or one of its local tasks failed."""


class RegistryError(EmtuneError):
    """A model registry cannot be reached or refuses a registration."""
