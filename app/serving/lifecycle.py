"""The served model's lifecycle: which versions are loaded, and how a new version replaces an
old one without dropping a request.

``ServedModel`` follows TensorFlow Serving's model: it keeps polling ``<model_dir>/vae/``; a
version it should serve (its version policy: the latest, one pinned, several, or all) is
loaded and warmed off the request path, then swapped in at once; requests already holding the
old version (holding it) finish on it, and it is unloaded when the last one is done. A version
that fails to load is reported with the reason (status, log, metric) and skipped; it is tried
again only when its files change. Each version goes START -> LOADING -> AVAILABLE ->
UNLOADING -> END, TensorFlow Serving's states.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from app import metrics
from app.config import Settings
from app.serving.batching import Batcher
from app.serving.errors import Unavailable, VersionNotFound
from app.serving.model import Loader, Model
from app.serving.servable import Servable
from app.serving.versions import State, VersionStatus, fingerprint
from vae_contract import MODEL_NAME, list_versions, model_base

log = logging.getLogger(__name__)

HOW_TO_TRAIN = "train one with `make train` (or `vae-train --model-dir MODEL_DIR`)"


@dataclass
class _Failure:
    fingerprint: tuple
    status: VersionStatus = field(repr=False)


class ServedModel:
    """Owns the served versions: polling, load, warm-up, swap, unload, status and info."""

    def __init__(self, settings: Settings, load: Loader):
        self.settings = settings
        self.base = model_base(settings.model_dir)
        self._load = load
        self._available: dict[int, Servable] = {}  # replaced whole, never changed in place
        self._statuses: dict[int, VersionStatus] = {}
        self._failures: dict[int, _Failure] = {}
        self._poller: asyncio.Task | None = None
        self._unloading: set[asyncio.Task] = set()
        self._render_slot = asyncio.Semaphore(1)
        self._why_not = "loading"

    # --- what requests use --------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return bool(self._available)

    @property
    def why_not_ready(self) -> str:
        return self._why_not

    @property
    def versions(self) -> list[int]:
        """The versions being served, oldest first."""
        return sorted(self._available)

    @property
    def default_version(self) -> int | None:
        """The version unversioned requests get: the newest available."""
        return max(self._available) if self._available else None

    def get(self, version: int | None = None) -> Servable:
        """The servable for ``version`` (default: the newest), or Unavailable/VersionNotFound."""
        if not self._available:
            raise Unavailable(f"model not ready: {self._why_not}")
        if version is None:
            return self._available[max(self._available)]
        servable = self._available.get(version)
        if servable is None:
            raise VersionNotFound(
                f"version {version} of model {MODEL_NAME} is not served (serving "
                f"{sorted(self._available)})"
            )
        return servable

    def hold(self, servable: Servable) -> None:
        """Count a request running on ``servable`` until ``release``: a version is not
        unloaded while one does. One retired since the request picked it is not held (503)."""
        if servable.retiring:
            raise Unavailable(
                f"model version {servable.version} was replaced while this request was read; retry"
            )
        servable.leases += 1

    def release(self, servable: Servable) -> None:
        """The request that held ``servable`` is done; the last one unloads a retired version."""
        servable.leases -= 1
        if servable.retiring and servable.leases == 0:
            self._unload_soon(servable)

    def statuses(self, version: int | None = None) -> list[VersionStatus]:
        """TensorFlow Serving's model_version_status list (all versions, newest first)."""
        if version is not None:
            if version not in self._statuses:
                raise VersionNotFound(f"Could not find version {version} of model {MODEL_NAME}")
            return [self._statuses[version]]
        if not self._statuses:
            raise VersionNotFound(f"Could not find any versions of model {MODEL_NAME}")
        return [self._statuses[v] for v in sorted(self._statuses, reverse=True)]

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Load what is there before serving (a healthy start is ready at once), then poll."""
        await self.refresh()
        if self.settings.model_poll_seconds > 0:
            self._poller = asyncio.create_task(self._poll(), name="model-poller")

    async def stop(self) -> None:
        """Stop polling, let queued calls finish, stop every batcher."""
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        servables, self._available = list(self._available.values()), {}
        await asyncio.gather(*self._unloading, return_exceptions=True)
        for servable in servables:
            await asyncio.to_thread(servable.batcher.close)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.model_poll_seconds)
            try:
                await self.refresh()
            except Exception:  # noqa: BLE001 - the poller must survive anything
                log.exception("model poll failed; trying again next time")

    async def refresh(self) -> None:
        """One look at the model folder: load what the policy wants, swap, retire the rest."""
        present = await asyncio.to_thread(list_versions, self.base)
        self._forget_vanished(present)
        loaded: dict[int, Servable] = {}
        for version in self._candidates(present):
            if version in self._available or version in loaded:
                continue
            servable = await self._try_load(version)
            if servable is not None:
                loaded[version] = servable
                if self._policy_wants_one:
                    break
        wanted = self._wanted(present, {**self._available, **loaded})
        self._swap({v: s for v, s in {**self._available, **loaded}.items() if v in wanted})
        self._update_readiness(present)

    @property
    def _policy_wants_one(self) -> bool:
        return self.settings.model_versions is None

    def _candidates(self, present: list[int]) -> list[int]:
        """Versions to load if not loaded, best first; known failures are skipped."""
        settings = self.settings
        if settings.model_version is not None:
            pinned = [settings.model_version]
            return [v for v in pinned if v in present and not self._still_failing(v)]
        if settings.model_versions == "all":
            chosen = present
        elif settings.model_versions is not None:
            listed = {int(v) for v in settings.model_versions.split(",")}
            chosen = [v for v in present if v in listed]
        else:  # latest: a newer version, or any if the served one left the disk (roll back)
            served = max(self._available, default=None)
            chosen = [v for v in present if served not in present or v > served]
        return [v for v in sorted(chosen, reverse=True) if not self._still_failing(v)]

    def _wanted(self, present: list[int], loaded: dict[int, Servable]) -> set[int]:
        """Which loaded versions to serve now. Latest or pinned: the best one loaded, even if
        its folder is gone (never a gap); several: each one still on disk."""
        if not loaded:
            return set()
        if self._policy_wants_one:
            on_disk = [v for v in loaded if v in present]
            return {max(on_disk or loaded)}
        return {v for v in loaded if v in present} or {max(loaded)}

    def _still_failing(self, version: int) -> bool:
        failure = self._failures.get(version)
        return failure is not None and failure.fingerprint == fingerprint(self.base / str(version))

    async def _try_load(self, version: int) -> Servable | None:
        """Load and warm a version in a worker thread; on failure record why and skip it."""
        path = self.base / str(version)
        self._set_state(version, State.LOADING)
        files = await asyncio.to_thread(fingerprint, path)
        try:
            model = await asyncio.to_thread(self._load_and_warm, path)
        except Exception as error:  # noqa: BLE001 - a bad version must never be fatal
            code = getattr(error, "code", "UNKNOWN")
            message = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
            status = VersionStatus(version, State.END, code, message)
            self._statuses[version] = status
            self._failures[version] = _Failure(files, status)
            metrics.LOAD_FAILURES.labels(code).inc()
            log.error("model version %d skipped (%s): %s", version, code, message)
            return None
        self._failures.pop(version, None)
        batcher = Batcher(model, self.settings.max_rows_per_call, name=f"inference-v{version}")
        return Servable(model, batcher, self._render_slot)

    def _load_and_warm(self, path: Path) -> Model:
        model = self._load(path)
        seconds = model.warm_up()
        # TensorFlow leaves ~400,000 long-lived objects that every full garbage collection
        # would walk again: freezing them took p99 latency at 64 clients from 239 to 55 ms.
        # A collection first, only while nothing is served: it holds the GIL (~0.2 s).
        if not self._available:
            gc.collect()
        gc.freeze()
        log.info(
            "model version %d loaded on %s (latent_dim %d), warm-up %.2f s",
            model.version,
            model.device,
            model.latent_dim,
            seconds,
        )
        return model

    def _swap(self, serving: dict[int, Servable]) -> None:
        """Serve exactly ``serving`` from now on; retire what is left out."""
        retired = [s for v, s in self._available.items() if v not in serving]
        for version in serving:
            if version not in self._available:
                self._set_state(version, State.AVAILABLE)
        self._available = serving  # the atomic switch: one assignment on the event loop
        metrics.SERVING_VERSION.set(max(serving) if serving else 0)
        for servable in retired:
            log.info("model version %d retired; unloading after its last request", servable.version)
            servable.retiring = True
            self._set_state(servable.version, State.UNLOADING)
            if servable.leases == 0:
                self._unload_soon(servable)

    def _unload_soon(self, servable: Servable) -> None:
        task = asyncio.get_running_loop().create_task(self._unload(servable))
        self._unloading.add(task)
        task.add_done_callback(self._unloading.discard)

    async def _unload(self, servable: Servable) -> None:
        version = servable.version
        await asyncio.to_thread(servable.batcher.close)
        self._set_state(version, State.END)
        del servable.model  # the last reference: TensorFlow frees the variables
        seconds = await asyncio.to_thread(_collect_unfrozen)
        log.info("model version %d unloaded (garbage collection %.2f s)", version, seconds)

    def _forget_vanished(self, present: list[int]) -> None:
        """Versions removed from disk: forget their failures and finished states."""
        for version in list(self._statuses):
            gone = version not in present and version not in self._available
            if gone and self._statuses[version].state in (State.END, State.START):
                del self._statuses[version]
                self._failures.pop(version, None)

    def _update_readiness(self, present: list[int]) -> None:
        metrics.MODEL_READY.set(1 if self._available else 0)
        if self._available:
            self._why_not = "ready"
            return
        failures = [self._statuses[v] for v in sorted(self._failures, reverse=True)]
        if failures:
            latest = failures[0]
            self._why_not = (
                f"version {latest.version} failed to load ({latest.error_code}): "
                f"{latest.error_message}"
            )
        elif not present:
            self._why_not = f"no model version in VAE_MODEL_DIR/{MODEL_NAME}/; {HOW_TO_TRAIN}"
        elif self.settings.model_version is not None:
            self._why_not = (
                f"model version {self.settings.model_version} (VAE_MODEL_VERSION) not found; "
                f"versions present: {present}"
            )
        else:
            self._why_not = f"none of the versions present {present} is selected by the policy"

    def _set_state(self, version: int, state: State) -> None:
        self._statuses[version] = VersionStatus(version, state)


def _collect_unfrozen() -> float:
    """An unloaded version's objects sit in the frozen generation: one full collection frees
    them (a pause of about 0.2 s, once per unload); returns its seconds."""
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return time.perf_counter() - started
