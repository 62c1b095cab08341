"""The ``outliers`` check: unusual rows of a window, named by their prediction ids.

The window's row sample (its reservoir: every row up to 10,000, a uniform sample beyond, each
row with its prediction id) is scored by a detector fitted on the reference's rows. A row is
flagged above the score the reference exceeds at the target false-positive rate (1% by
default, on reference scores the detector was not trained on); the window alerts when it has
more flagged rows than that rate allows (a one-sided beta-binomial test, which counts the
threshold's own uncertainty) and at least ``min_rate_ratio`` times the expected share. The
result lists the flagged rows' prediction ids, most unusual first, and for each the feature
furthest from the reference.

``method``: ``residuals`` (default: each feature against what the row's other features predict,
``detectors.ResidualScorer``), ``isolation_forest`` (on reference-whitened numbers, see
``whiten``), ``mahalanobis``, ``robust_mahalanobis`` (all fitted on the reference, then static)
or ``online``: a
running mean and covariance that each window's unflagged rows update after it is scored. The online
state is stored with the model version, so a restarted collector continues from it. A window
evaluated again (late data or labels) is not folded in twice; the latest one is scored again with
the state it was first scored with.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np

from inferwatch.collector.detect.check import check, no_reference, not_enough_data
from inferwatch.collector.detect.columns import Columns
from inferwatch.collector.detect.levels import SampleScorer, SampleScores
from inferwatch.collector.detect.view import DetectorStates, WindowView
from inferwatch.collector.detectors import (
    Dataset,
    DetectionResult,
    OnlineOutlierDetector,
    OutlierDetector,
)
from inferwatch.collector.detectors.params import (
    Flag,
    Int,
    Rate,
    Ratio,
    Seed,
    default_of,
    within,
)
from inferwatch.collector.detectors.result import Result
from inferwatch.collector.reference.profile import Profile
from inferwatch.collector.settings import CheckSettings, ThresholdTable

NAME = "outliers"
# The stored state's format; a state of another format (or reference) is started afresh.
_STATE_FORMAT = 2


class OutlierSettings(CheckSettings):
    """``OutlierDetector``'s parameters (``OnlineOutlierDetector``'s for ``method = "online"``),
    and how many flagged rows a result lists."""

    threshold: ThresholdTable | None = None
    method: Literal[
        "residuals", "isolation_forest", "mahalanobis", "robust_mahalanobis", "online"
    ] = default_of(OutlierDetector, "method")
    target_fpr: Rate = default_of(OutlierDetector, "target_fpr")
    alpha: Rate = default_of(OutlierDetector, "alpha")
    min_rate_ratio: Ratio = default_of(OutlierDetector, "min_rate_ratio")
    whiten: Flag | Literal["auto"] = default_of(OutlierDetector, "whiten")
    # The flagged prediction ids a result lists, most unusual first.
    max_flagged: Annotated[Int, within(0)] = 1000
    # Score categorical columns too (one-hot); numbers only by default (see _scored_columns).
    categorical: Flag = False
    online_update: Literal["inliers", "all", "none"] = default_of(OnlineOutlierDetector, "update")
    random_state: Seed = default_of(OutlierDetector, "random_state")

    def offline(self) -> OutlierDetector:
        return OutlierDetector(
            self.method,
            target_fpr=self.target_fpr,
            alpha=self.alpha,
            min_rate_ratio=self.min_rate_ratio,
            whiten=self.whiten,
            random_state=self.random_state,
        )

    def online(self) -> OnlineOutlierDetector:
        return OnlineOutlierDetector(
            "mahalanobis",
            target_fpr=self.target_fpr,
            alpha=self.alpha,
            min_rate_ratio=self.min_rate_ratio,
            update=self.online_update,
            random_state=self.random_state,
        )


def _scorer(profile: Profile, settings: OutlierSettings, task: str | None) -> SampleScorer:
    """The share of a sample's rows flagged, by a detector fitted as the check fits its own."""
    if settings.method == "online":
        raise ValueError(
            "the online detector changes with every window, so its flag rate has no fixed null "
            "to calibrate; use mode 'history' or 'static'"
        )
    columns = _scored_columns(profile, settings)
    if not columns:
        raise ValueError("the reference has no feature columns to score rows on")

    def fit(rows: Dataset) -> Callable[[Dataset], SampleScores]:
        detector = settings.offline().fit(rows)
        return lambda sample: {None: detector.run(sample).score}

    return SampleScorer(columns.rows(profile.reservoir), fit)


@check(NAME, OutlierSettings, calibration=_scorer)
def outliers(
    profile: Profile | None, window: WindowView, settings: OutlierSettings
) -> list[Result]:
    if profile is None:
        return no_reference(NAME, window.model, window.version)
    method = settings.method
    columns = _scored_columns(profile, settings)
    if not columns:
        return not_enough_data(NAME, "the reference has no feature columns to score rows on")
    if method == "online" and not columns.numeric:
        return not_enough_data(NAME, "the online detector scores numbers; the reference has none")
    rows = columns.rows(window.state.reservoir)
    if not rows.rows:
        return not_enough_data(NAME, "the window has no rows to score")
    if method == "online":
        found, state = _run_online(profile, window, settings, columns)
    else:
        detector = window.fitted.get(
            NAME,
            window.model,
            window.version,
            profile,
            settings,
            lambda: settings.offline().fit(columns.rows(profile.reservoir)),
        )
        found, state = detector.run(rows), None  # the rows carry their ids
    return [_result(found, rows.rows, window.state.rows, method, settings.max_flagged, state)]


def _scored_columns(profile: Profile, settings: OutlierSettings) -> Columns:
    columns = Columns.of(profile, "feature")
    # One-hot categories make every row of a minority category look unusual to the forest: with a
    # 10% category beside 5 numeric features, the unwhitened forest flagged 21 of 40 rows set 7 sd
    # off on two features (5 seeds, 1% target rate), ranking clean rows of the rare category above
    # them; on the numbers alone 37 of 40. So only numbers are scored unless asked (or there are
    # none); the online detector takes only numbers.
    if columns.numeric and (settings.method == "online" or not settings.categorical):
        columns = Columns("feature", columns.numeric, ())
    return columns


def _result(
    found: DetectionResult,
    scored: int,
    window_rows: int,
    method: str,
    cap: int,
    state: str | None,
) -> Result:
    details: dict[str, Any] = {
        **dict(found.details),
        "method": method,
        "scored_rows": scored,
        "window_rows": window_rows,
    }
    message = found.message
    if found.rows is not None:
        scores, flags = found.rows.scores, found.rows.flags
        order = np.argsort(-scores[flags], kind="stable")
        positions = np.flatnonzero(flags)[order][:cap].tolist()
        ids = found.rows.row_ids
        top = found.rows.top_features
        details.update(
            flagged_total=int(flags.sum()),
            flagged_ids=[None if ids is None else ids[p] for p in positions],
            flagged_scores=[float(scores[p]) for p in positions],
            top_features=[None if top is None else top[p] for p in positions],
        )
    if scored < window_rows:
        message += f" (scored a uniform sample of {scored:,} of the window's {window_rows:,} rows)"
    if state is not None:
        details["online_state"] = state
    return Result(
        detector=NAME,
        score=found.score,
        p_value=found.p_value,
        threshold=found.threshold,
        decision=found.decision,
        message=message,
        details=details,
    )


# -- online ------------------------------------------------------------------------------------


def _run_online(
    profile: Profile, window: WindowView, settings: OutlierSettings, columns: Columns
) -> tuple[DetectionResult, str]:
    """Score with the stored running state (or the reference's, at first), then store it.

    Returns the result and what happened to the state: "updated", "replayed" (a window
    evaluated again is not folded in twice; the last one is scored with the state it had) or
    "not stored" (no state store was given).
    """

    def fit() -> tuple[dict[str, Any], str]:
        detector = settings.online().fit(columns.rows(profile.reservoir))
        # The stored state belongs to this reference and these settings, nothing else. (The
        # digest is of the settings as the check had them before the typed schema: a state
        # stored then still matches.)
        digest = hashlib.blake2b(profile.to_bytes(), digest_size=16)
        kept = settings.model_dump(mode="json", exclude={"threshold"})
        digest.update(json.dumps(kept, sort_keys=True, default=repr).encode())
        return detector.to_dict(), digest.hexdigest()

    fitted, reference = window.fitted.get(
        NAME, window.model, window.version, profile, settings, fit
    )
    states = window.detector_states
    stored = _load(states, window, reference)
    state = stored["detector"] if stored is not None else fitted
    replay = stored is not None and window.end_ms <= stored["through_ms"]
    if replay and stored is not None and window.end_ms == stored["through_ms"]:
        # The last window folded in, again (late labels): scored as it was the first time.
        state = stored["before"]
    params = {**state["params"], "update": "none"} if replay else state["params"]
    detector = OnlineOutlierDetector.from_dict({**state, "params": params})
    rows = columns.rows(window.state.reservoir)
    found = detector.run(rows)
    if states is None:
        return found, "not stored"
    if replay:
        return found, "replayed"
    saved = {
        "format": _STATE_FORMAT,
        "reference": reference,
        "through_ms": window.end_ms,
        "before": state,
        "detector": detector.to_dict(),
    }
    states.put_detector_state(window.model, window.version, NAME, json.dumps(saved).encode())
    return found, "updated"


def _load(
    states: DetectorStates | None, window: WindowView, reference: str
) -> dict[str, Any] | None:
    if states is None:
        return None
    data = states.detector_state(window.model, window.version, NAME)
    if data is None:
        return None
    try:
        stored = json.loads(data)
    except ValueError:
        return None
    if (
        not isinstance(stored, dict)
        or stored.get("format") != _STATE_FORMAT
        or stored.get("reference") != reference
    ):
        return None
    return stored
