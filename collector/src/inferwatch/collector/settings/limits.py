"""``[collector.limits]``: how much one OTLP export request, and one span in it, may hold.

The receiver checks each limit before it allocates for what is claimed (docs/otlp-ingest.md,
"Limits"). A request over a per-request limit is refused whole (413); a span over a per-span
limit is rejected alone and named in ``partial_success``; a frame over a frame limit is dropped
from its span as an issue.
"""

from __future__ import annotations

from typing import Annotated

from inferwatch.collector.detectors.params import Count, Int, Table, within
from inferwatch.collector.settings.durations import Duration
from inferwatch.frame import FrameLimits

_CEILING = FrameLimits()


# A frame the receiver accepts must decode again wherever frames are read back (the journal's
# replay uses FrameLimits' defaults), so a frame limit cannot be raised beyond its ceiling.


class IngestLimits(Table):
    # Per request: beyond any, the request is answered 413 and nothing in it is taken.
    resources_per_request: Count = 10_000
    scopes_per_request: Count = 10_000
    spans_per_request: Count = 10_000
    # Every OTLP value: resources, scopes, spans, events, links, attributes, array elements.
    # Counted on the wire before protobuf decodes it, so memory stays proportional to this.
    values_per_request: Count = 2_000_000
    # Per span: beyond any, the span is rejected (partial_success) and the others are taken.
    attributes_per_span: Count = 1_000
    events_per_span: Count = 1_000
    links_per_span: Count = 1_000
    rows_per_span: Annotated[Int, within(1, _CEILING.rows)] = 100_000
    # Model name, version and prediction ids, in characters.
    text_chars: Annotated[Int, within(1, _CEILING.text_chars)] = 1_024
    # How far a span's start may lie before now, and its start or end after now. The age is
    # generous so that history can be backfilled; either refuses times no window can hold.
    max_span_age: Annotated[Duration, within(0, low_open=True)] = 3650 * 86400.0
    max_clock_skew: Annotated[Duration, within(0, low_open=True)] = 3600.0
    # Per frame: beyond any, the frame is dropped from its span and an issue recorded.
    columns_per_frame: Annotated[Int, within(1, _CEILING.columns)] = 10_000
    cells_per_frame: Annotated[Int, within(1, _CEILING.cells)] = 10_000_000
    frame_header_bytes: Annotated[Int, within(1, _CEILING.header_bytes)] = 8 * 2**20
    # Feature names and categories, in characters.
    frame_text_chars: Annotated[Int, within(1, _CEILING.text_chars)] = 1_024

    def frame_limits(self) -> FrameLimits:
        return FrameLimits(
            rows=self.rows_per_span,
            columns=self.columns_per_frame,
            cells=self.cells_per_frame,
            header_bytes=self.frame_header_bytes,
            text_chars=self.frame_text_chars,
        )


# The limits of a receiver given none (a test's, a benchmark's).
DEFAULT_LIMITS = IngestLimits()
