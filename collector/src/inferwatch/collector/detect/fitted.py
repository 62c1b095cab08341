"""Detectors fitted on a reference, kept for the windows that follow it.

A detector is fitted once per (check, model, version, reference profile, settings) and reused
for every window until the reference or the settings change; a window never pays for a fit.
The running collector owns one cache (checks reach it as ``WindowView.fitted``).
The profile is recognised by identity (``References`` hands out one object per stored
reference) and held weakly, so a replaced reference is refitted and an id reused by a new object
is never mistaken for the old one. A failed fit is remembered too: the same reference would fail
again on every window.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from inferwatch.collector.reference.profile import Profile
from inferwatch.collector.settings import CheckSettings

T = TypeVar("T")
# Enough for every check of a few dozen model versions; the oldest entry goes first.
MAX_ENTRIES = 128

_Key = tuple[str, str, str, int, str]


@dataclass(frozen=True)
class _Entry:
    profile: weakref.ref[Profile]
    value: Any
    error: Exception | None


class FittedCache:
    """A bounded LRU of fitted detectors; ``fits`` counts the fits made, per check."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self.fits: Counter[str] = Counter()
        self._entries: OrderedDict[_Key, _Entry] = OrderedDict()
        # Held while fitting, so concurrent evaluations of one version fit once.
        self._lock = threading.Lock()

    def get(
        self,
        check: str,
        model: str,
        version: str,
        profile: Profile,
        settings: CheckSettings | Mapping[str, Any],
        fit: Callable[[], T],
    ) -> T:
        """The value ``fit()`` returned for this reference and settings, fitting on first use.

        ``settings``: a check's settings (what it fits depends on all but whether it runs and
        its levels) or any mapping that says what the fit depends on."""
        if isinstance(settings, CheckSettings):
            settings = settings.detector_settings()
        key = (check, model, version, id(profile), _settings_key(settings))
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.profile() is not profile:
                entry = self._fit(check, profile, fit)
                self._entries[key] = entry
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
            self._entries.move_to_end(key)
        if entry.error is not None:
            raise entry.error
        value: T = entry.value
        return value

    def _fit(self, check: str, profile: Profile, fit: Callable[[], T]) -> _Entry:
        self.fits[check] += 1
        try:
            return _Entry(weakref.ref(profile), fit(), None)
        except ValueError as exc:
            return _Entry(weakref.ref(profile), None, exc)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _settings_key(settings: Mapping[str, Any]) -> str:
    return json.dumps(dict(settings), sort_keys=True, default=repr)
