"""The models a service worker answers with, and how it picks up a newly promoted champion.

:class:`ModelSlot` holds the bundle behind the registry alias (or none: the rule fallback, with the reason) and
swaps it whole. It loads in the background at start-up, checks the alias every
``service.reload_interval_seconds``, and reloads on ``POST /reload``. With several workers, ``POST /reload``
reaches the one that answers it; that worker then writes a :class:`ReloadSignal` file named in
``RELOAD_SIGNAL_ENV_VAR``, which the others poll, so that every worker loads the new champion within
``SIGNAL_POLL_SECONDS``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from pathlib import Path

from tiercast.serving.api import FALLBACK_VERSION, ReloadResponse
from tiercast.serving.config import ServingSettings
from tiercast.serving.scorer import ModelBundle, ModelsUnavailable
from tiercast.training.registry import version_by_alias

log = logging.getLogger("bentoml.tiercast")

RELOAD_SIGNAL_ENV_VAR = "TIERCAST_RELOAD_SIGNAL"
SIGNAL_POLL_SECONDS = 0.5


class ReloadSignal:
    """A file shared by the workers of one service: a worker that reloaded writes a new token into it, and the
    others, reading it every ``SIGNAL_POLL_SECONDS``, reload when it changes. (BentoML hands ``POST /reload`` to
    one worker; checking the registry alias that often instead would cost each worker a registry query per
    poll.)"""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def from_env(cls) -> "ReloadSignal | None":
        path = os.environ.get(RELOAD_SIGNAL_ENV_VAR)
        return cls(Path(path)) if path else None

    def read(self) -> str:
        try:
            return self.path.read_text()
        except OSError:  # not written yet, or the service is shutting down
            return ""

    def send(self) -> str:
        """Write a new token (through a rename, so no reader sees half of it) and return it."""
        token = uuid.uuid4().hex
        part = self.path.with_name(f"{self.path.name}.{token}")
        part.write_text(token)
        part.replace(self.path)
        return token


LOADING_REASON = "models are still loading"


class ModelSlot:
    """The bundle the service answers with (None: the rule fallback, with the reason), swapped whole."""

    def __init__(self, settings: ServingSettings, signal: ReloadSignal | None = None) -> None:
        self.registry = settings.registry
        self.alias = settings.service.model_alias
        self.loaded = threading.Event()
        self.signal = signal
        self._state: tuple[ModelBundle | None, str] = (None, LOADING_REASON)
        self._refresh_lock = threading.Lock()
        self._sent = ""  # the last token this worker wrote: its own reload, already done

    def current(self) -> tuple[ModelBundle | None, str]:
        return self._state

    def start(self, reload_interval_seconds: float | None) -> None:
        """Load the models in the background, then follow the alias (every interval, if any) and the other
        workers' reloads (if there is a signal)."""
        threading.Thread(target=self.refresh, name="tiercast-model-load", daemon=True).start()
        if reload_interval_seconds:
            threading.Thread(target=self._follow_alias, args=(reload_interval_seconds,),
                             name="tiercast-model-follow", daemon=True).start()
        if self.signal is not None:
            threading.Thread(target=self._follow_signal, args=(self.signal, self.signal.read()),
                             name="tiercast-reload-signal", daemon=True).start()

    def reload(self) -> ReloadResponse:
        """:meth:`refresh`, and tell the other workers to do the same."""
        answer = self.refresh()
        if self.signal is not None:
            self._sent = self.signal.send()
        return answer

    def _alias_value_version(self) -> str | None:
        """The value model version the alias names: it decides the whole set (see tiercast.training.registry)."""
        try:
            found = version_by_alias(self.registry.value_model, self.alias)
        except Exception:  # an unreachable store: the full load below reports it
            return None
        return None if found is None else str(found.version)
    def refresh(self) -> ReloadResponse:
        """Load the models behind the alias unless they are the ones in use; keep working models on failure."""
        with self._refresh_lock:
            bundle, _ = self._state
            try:
                if bundle is not None and self._alias_value_version() == str(bundle.versions[self.registry.value_model]):
                    return ReloadResponse(model_version=bundle.version_label, changed=False,
                                          detail=f"'{self.alias}' is unchanged")
                try:
                    new = ModelBundle.load(self.registry, self.alias)
                except ModelsUnavailable as err:
                    if bundle is None:
                        self._state = (None, str(err))
                        log.warning("no models: every answer comes from the rule fallback (%s)", err)
                        return ReloadResponse(model_version=FALLBACK_VERSION, changed=False, detail=str(err))
                    log.warning("reload failed, keeping %s: %s", bundle.version_label, err)
                    return ReloadResponse(model_version=bundle.version_label, changed=False,
                                          detail=f"kept the models in use: {err}")
                self._state = (new, "")
                log.info("answering with %s", new.version_label)
                return ReloadResponse(model_version=new.version_label, changed=True,
                                      detail=f"loaded '{self.alias}'")
            finally:
                self.loaded.set()

    def _follow_alias(self, interval_seconds: float) -> None:
        """Pick up a newly promoted champion: the alias is checked (one registry lookup) every interval,
        and the models are loaded only when it points elsewhere."""
        while True:
            time.sleep(interval_seconds)
            try:
                self.refresh()  # logs what it loaded, or why it kept the models in use
            except Exception:  # this thread must outlive any one failure
                log.exception("checking the '%s' alias failed", self.alias)

    def _follow_signal(self, signal: ReloadSignal, seen: str) -> None:
        """Reload when another worker has: its token in the signal file changes."""
        while True:
            time.sleep(SIGNAL_POLL_SECONDS)
            token = signal.read()
            if token in (seen, self._sent, ""):
                continue
            seen = token
            try:
                self.refresh()
            except Exception:  # this thread must outlive any one failure
                log.exception("reloading after another worker did failed")
