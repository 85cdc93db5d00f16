"""Per-process serving state: the configuration and model caches, the decision log writer, the
shadow pool and the admission of predict calls."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from core.config import Settings
from core.db import transaction
from core.errors import ServiceUnavailable
from lineage import registry
from lineage.artifacts import ArtifactStore
from serving import metrics
from serving.decision_log import DecisionLog
from serving.endpoints import current_config, list_endpoints
from serving.model_cache import LoadedModel, ModelCache
from serving.payload import DecisionPayload
from serving.schemas import EndpointConfigDocument

log = logging.getLogger("govern.serving")


@dataclass(frozen=True)
class Resident:
    """An endpoint's configuration and its routes' models, as they are in memory."""

    config: EndpointConfigDocument
    models: dict[tuple[str, int], LoadedModel]


@dataclass
class Serving:
    """What one process keeps for serving.

    ``admission`` lets a few predict calls in at a time, first come first served: under overload
    requests queue and finish in order, instead of all interleaving and all finishing late.
    """

    settings: Settings
    sessions: sessionmaker[Session]
    log: DecisionLog
    models: ModelCache
    admission: asyncio.Semaphore
    shadow_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="govern-shadow"
        )
    )
    rng: random.Random = field(default_factory=random.SystemRandom)
    # Predict calls past their body and not yet answered (``serving.predict``).
    deciding: int = 0
    _configs: dict[str, tuple[float, EndpointConfigDocument]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, settings: Settings, sessions: sessionmaker[Session]) -> Serving:
        return cls(
            settings=settings,
            sessions=sessions,
            log=DecisionLog(sessions, settings.decision_log_max_batch),
            models=ModelCache(ArtifactStore(settings.artifacts), settings.model_cache_size),
            admission=asyncio.Semaphore(settings.predict_concurrency),
        )

    def start(self) -> None:
        self.log.start()

    def warm(self) -> int:
        """Load and verify every model an endpoint routes or shadows to, before traffic comes.

        A restarted process then answers its first requests at full speed instead of queueing
        them behind model loads (and shedding them). Anything that fails here is only logged:
        the request path raises the same error, to the caller, with its proper status.
        """
        try:
            with transaction(self.sessions) as session:
                configs = [current_config(session, name) for name in list_endpoints(session)]
        except Exception as exc:
            log.warning("models not preloaded: %s", exc)
            return 0
        targets = sorted({target for config in configs for target in config.targets()})[
            : self.settings.model_cache_size
        ]
        loaded = 0
        for name, version in targets:
            try:
                self.model(name, version)
                loaded += 1
            except Exception as exc:
                log.warning("model %s v%s not preloaded: %s", name, version, exc)
        return loaded

    def stop(self) -> None:
        self.shadow_pool.shutdown(wait=True)
        self.log.stop()

    def forget(self, endpoint: str) -> None:
        with self._lock:
            self._configs.pop(endpoint, None)

    def config_for(self, endpoint: str) -> EndpointConfigDocument:
        now = time.monotonic()
        with self._lock:
            cached = self._configs.get(endpoint)
        if cached is not None and cached[0] > now:
            return cached[1]
        with transaction(self.sessions) as session:
            config = current_config(session, endpoint)
        with self._lock:
            self._configs[endpoint] = (now + self.settings.endpoint_cache_ttl_s, config)
        return config

    def resident(self, endpoint: str) -> Resident | None:
        """The endpoint's configuration and every model it routes to, if all are in memory now
        (the configuration fresh, each model loaded); else None. Planning with them reads no
        database and no file, so a one-row request is planned on the event loop: cheaper than
        handing it to a worker thread and back."""
        with self._lock:
            cached = self._configs.get(endpoint)
        if cached is None or cached[0] <= time.monotonic():
            return None
        config = cached[1]
        models = {}
        for route in config.routes:
            model = self.models.by_version(route.model, route.version)
            if model is None:
                return None
            models[(route.model, route.version)] = model
        return Resident(config, models)

    def endpoint_label(self, name: str) -> str:
        """``name`` as a metric label once it is known to exist, else one fixed label: names
        from the path must not grow the metrics without bound."""
        with self._lock:
            known = name in self._configs
        return name if known else metrics.UNKNOWN_ENDPOINT

    def model(self, name: str, version: int) -> LoadedModel:
        # A model version never changes once registered, so once loaded (and verified) it is
        # served from memory without asking the database again.
        cached = self.models.by_version(name, version)
        if cached is not None:
            return cached
        with transaction(self.sessions) as session:
            _model, found = registry.get_version(session=session, name=name, version=version)
        return self.models.get(name, found)

    async def commit(self, payloads: Sequence[DecisionPayload]) -> list[tuple[int, str]]:
        """Log records durably; (seq, record_hash) each. Fails closed: 503 if the log cannot be
        written, so no answer leaves without its record."""
        try:
            return await asyncio.wrap_future(self.log.submit(payloads))
        except Exception as exc:
            raise ServiceUnavailable(
                "the decision log cannot be written, so no decision is returned; retry later",
                code="decision_log_unavailable",
                headers={"Retry-After": "1"},
            ) from exc
