"""The one error hierarchy of maskstream.

Every runtime failure the pipeline reports is one of these, so that callers can
catch ``MaskstreamError`` and know the message names what failed and where.
"""

from __future__ import annotations


class MaskstreamError(Exception):
    """Base class of every error maskstream raises on purpose."""


class ConfigError(MaskstreamError):
    """The configuration is invalid; the message names the YAML path, the value and what was expected."""


class DecodeError(MaskstreamError):
    """A stream could not be opened, demuxed or decoded; the message names the stream and the cause."""


class InferenceError(MaskstreamError):
    """The model could not be built, loaded or run on a batch."""


class SinkError(MaskstreamError):
    """A sink (Redis, video file, JSON Lines) could not accept or write a result."""
