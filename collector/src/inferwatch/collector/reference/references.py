"""Reference profiles: fitted once from an upload (or from early traffic), cached, never refitted
per window.

Without an uploaded reference a model version gets one by its policy: ``rows`` fits the first N
rows seen (held in memory until then, so a restart starts collecting again), ``windows`` fits the
row samples of its first N closed windows. An upload always replaces an automatic reference.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from typing import Any

from inferwatch.collector.receive.batch import PredictionBatch
from inferwatch.collector.reference.profile import Profile
from inferwatch.collector.reference.store import ReferenceRecord, ReferenceStore, UploadRecord
from inferwatch.collector.settings import ModelConfig
from inferwatch.collector.window.summaries import WindowSummary
from inferwatch.frame import Frame, decode_frame

VersionKey = tuple[str, str]


class References:
    """Thread-safe: the ingest worker, the window task and upload requests all use it."""

    def __init__(
        self,
        store: ReferenceStore,
        config_for: Callable[[str], ModelConfig],
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._config_for = config_for
        self._clock = clock
        self._lock = threading.Lock()
        self._profiles: dict[VersionKey, Profile | None] = {}
        self._early_rows: dict[VersionKey, list[Frame]] = {}

    def profile(self, model: str, version: str) -> Profile | None:
        key = (model, version)
        with self._lock:
            if key in self._profiles:
                return self._profiles[key]
        record = self._store.get(model, version)
        profile = Profile.from_bytes(record.profile) if record is not None else None
        with self._lock:
            return self._profiles.setdefault(key, profile)

    def forget_missing(self) -> None:
        """Look again for the references of versions that had none: another collector sharing
        the database may have stored one since."""
        with self._lock:
            self._profiles = {k: p for k, p in self._profiles.items() if p is not None}

    def new_window(self, model: str, version: str) -> WindowSummary:
        """An empty summary for a new window of the version: over its reference's bins and
        categories, or without bins while it has no reference."""
        profile = self.profile(model, version)
        return profile.new_window() if profile is not None else WindowSummary()

    def observe(self, batch: PredictionBatch) -> None:
        """Keep early rows of versions that have no reference yet (the ``rows`` policy)."""
        policy = self._config_for(batch.model).reference
        if policy.policy != "rows" or batch.inputs is None:
            return
        key = (batch.model, batch.version)
        if self.profile(*key) is not None:
            return
        with self._lock:
            frames = self._early_rows.setdefault(key, [])
            if sum(f.rows for f in frames) < policy.size:
                frames.append(_with_outputs(batch.inputs, batch.outputs))

    def fit_due(self) -> list[ReferenceRecord]:
        """Fit and store references for versions that have collected enough early rows."""
        fitted: list[ReferenceRecord] = []
        with self._lock:
            due = [
                (key, frames)
                for key, frames in self._early_rows.items()
                if sum(f.rows for f in frames) >= self._config_for(key[0]).reference.size
            ]
        for (model, version), frames in due:
            fitted.append(self._save(model, version, None, "auto", Profile.fit(frames)))
            with self._lock:
                self._early_rows.pop((model, version), None)
        return fitted

    def fit_from_samples(self, model: str, version: str, samples: list[Frame]) -> ReferenceRecord:
        """The ``windows`` policy: a reference from closed windows' row samples."""
        return self._save(model, version, None, "auto", Profile.fit(samples))

    def commit_upload(self, upload: UploadRecord) -> ReferenceRecord:
        """Fit the uploaded parts in two streaming passes, store the profile, drop the parts."""

        if next(iter(self._store.parts(upload.upload_id)), None) is None:
            raise ValueError("the upload holds no parts; send at least one before committing")

        def frames() -> Iterator[Frame]:
            for data in self._store.parts(upload.upload_id):
                yield decode_frame(data)

        record = self._save(
            upload.model, upload.version, upload.task, "upload", Profile.fit(frames)
        )
        self._store.delete_upload(upload.upload_id)
        return record

    def _save(
        self, model: str, version: str, task: str | None, source: str, profile: Profile
    ) -> ReferenceRecord:
        features = sorted({name for role, name in profile.summary.columns if role == "feature"})
        details: dict[str, Any] = {"task": task, "features": features}
        record = ReferenceRecord(
            model,
            version,
            source,
            profile.rows,
            int(self._clock() * 1000),
            profile.to_bytes(),
            details,
        )
        self._store.put(record)
        with self._lock:
            self._profiles[(model, version)] = profile
            self._early_rows.pop((model, version), None)
        return record


def _with_outputs(inputs: Frame, outputs: Frame | None) -> Frame:
    if outputs is None or outputs.rows != inputs.rows:
        return inputs
    renamed = tuple(dataclasses.replace(column, role="output") for column in outputs.columns)
    return Frame(inputs.rows, inputs.columns + renamed)
