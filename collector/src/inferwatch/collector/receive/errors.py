"""Why the receiver refused a whole request; each carries the HTTP status it answers with."""


class ReceiveError(Exception):
    """The request as a whole cannot be taken; the message is a sentence for the client."""

    status_code = 400


class BadRequest(ReceiveError):
    """The body cannot be decoded (not protobuf, not OTLP JSON, a broken gzip stream)."""

    status_code = 400


class PayloadTooLarge(ReceiveError):
    """The body, once decompressed, is over the receiver's limit."""

    status_code = 413


class UnsupportedMediaType(ReceiveError):
    """A content type or content encoding the receiver does not read."""

    status_code = 415


class Busy(ReceiveError):
    """Other requests' bodies hold the receiver's in-flight budget; retry after a moment."""

    status_code = 503

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
