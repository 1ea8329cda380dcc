"""`syncd run`: the always-on daemon.

Wires the engine to its triggers: change notifications (webhook → debounced wake-up, and another
look while a notified change is not in delta yet), the APScheduler safety net (delta rounds,
Intune polls, subscription renewals, the periodic full resync, outbox retries), systemd
(READY/WATCHDOG/STATUS/STOPPING) and signals (TERM stops gracefully, HUP reopens logs and
reloads what is safe to reload).

Start-up: webhook, then the subscriptions (reused or created), then the catch-up rounds, so a
change made meanwhile is either in a catch-up round or notified. Directory rounds (and their
push) never wait for the Intune polls, which run alongside.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from syncd import log as syncd_log
from syncd import metrics, sdnotify
from syncd.config import Settings, load_settings
from syncd.health import create_health_app
from syncd.j1.errors import J1Error
from syncd.listener import Listener, ListenerLimits
from syncd.notified import NotifiedChanges
from syncd.progress import Progress
from syncd.runtime import Runtime, open_runtime
from syncd.sources.alerting import MirrorAlertStore
from syncd.sources.base import FollowsEntraDevices
from syncd.sources.catalog import mark_disabled
from syncd.sources.intune import COLLECTION_BY_ORIGIN, MANAGED_DEVICES_ORIGIN
from syncd.sources.intune import ORIGIN_PREFIX as INTUNE_PREFIX
from syncd.subscriptions import SubscriptionManager
from syncd.wakeup import WakeUps
from syncd.webhook import WebhookHooks, create_webhook_app

log = structlog.get_logger(__name__)

PUSH = "push"
FULL = "full"
SIGN_INS = "users:sign-ins"
"""Wake-up key of the users' last sign-in poll (a round of origin "users": never overlaps its delta)."""
NOTIFIED_ORIGINS = ("users", "groups")
MANAGED_DEVICES = MANAGED_DEVICES_ORIGIN
MAX_DEVICE_REFETCH = 50
"""More changed Entra devices than this in one devices round (a token reset, a bulk change): one
managed-devices poll instead of that many single-device re-fetches."""
STOP_TIMEOUT = 12.0
"""How long an in-flight round or push may take to finish after SIGTERM before it is cancelled (the
outbox keeps whatever was committed). With the cancel grace and the rest of the shutdown this
stays well inside the unit's TimeoutStopSec=30."""
CANCEL_GRACE = 5.0
START_EXTEND = 120.0
"""EXTEND_TIMEOUT_USEC sent while the first sync runs, so a big tenant's initial resync is not
killed by TimeoutStartSec (refreshed every START_EXTEND / 3 seconds)."""


@dataclass
class DaemonState:
    """What health, status and tests look at."""

    started: float = field(default_factory=time.time)
    ready: bool = False
    last_push_ok: float = 0.0
    last_push_error: str | None = None
    subscriptions: dict[str, str] = field(default_factory=dict)


class Daemon:
    """One running syncd. `run()` returns when stopped."""

    def __init__(
        self, settings: Settings, *, config_path: Path | None = None, install_signals: bool = True
    ) -> None:
        self.settings = settings
        self.config_path = config_path
        self.install_signals = install_signals
        self.state = DaemonState()
        self.stop_event = asyncio.Event()
        self.rt: Runtime | None = None
        self.wakeups: WakeUps | None = None
        self.subs: SubscriptionManager | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.webhook: Listener | None = None
        self.health_listener: Listener | None = None
        self.progress: Progress | None = None
        self._on_ready: list[Callable[[], None]] = []
        self.alert_wake = asyncio.Event()
        self._alert_task: asyncio.Task[None] | None = None
        self._baseline_running = False
        """The first full resync runs: its DIFF carries everything, so notified rounds meanwhile do
        not push (the baseline would go twice); their rows wait in the outbox."""
        self.notified: NotifiedChanges | None = None

    # --- lifecycle ------------------------------------------------------------------------
    async def run(self) -> int:
        async with open_runtime(self.settings) as rt:
            self.rt = rt
            await mark_disabled(rt.engine, self.settings)
            self.wakeups = WakeUps(self._work, cooldown=self.settings.sync.debounce, cooldowns={PUSH: 0.0})
            self.notified = NotifiedChanges(self.wakeups.request)
            if self.install_signals:
                self._install_signals()
            self.progress = Progress(
                rt.mirror.ping_writer,
                lambda: rt.engine.in_flight,
                writer_timeout=self.settings.health.writer_timeout,
                work_timeout=self.settings.health.work_timeout,
                on_change=lambda _problem: asyncio.ensure_future(self._status()),
            )
            watchdog_task = asyncio.create_task(
                self.progress.run(sdnotify.watchdog_interval()), name="watchdog"
            )
            try:
                sdnotify.status("starting: first sync")
                if await self._start_up(rt):
                    self.state.ready = True
                    await self._status()
                    sdnotify.ready()
                    log.info(
                        "syncd ready",
                        origins=sorted(rt.engine.sources),
                        notifications=bool(self.subs),
                        webhook=self.webhook_url,
                        health=self.health_url,
                    )
                    for callback in self._on_ready:
                        callback()
                    await self.stop_event.wait()
            finally:
                sdnotify.stopping("stopping: finishing the in-flight work")
                log.info("syncd stopping")
                await self._shutdown(watchdog_task)
                log.info("syncd stopped")
        return 0

    async def _start_up(self, rt: Runtime) -> bool:
        """Webhook, first sync, subscriptions, scheduler; False when a stop request came first.

        A SIGTERM during a long first sync must not wait for it: the start-up task is cancelled
        (a J1 job in flight is aborted, committed rounds stay in the outbox for the next start).
        """

        async def steps() -> None:
            await self._start_health()
            self._start_alert_dispatcher(rt)
            await self._start_webhook()
            await self._prepare_j1(rt)
            # Subscriptions before the catch-up: a change made from here on is notified, one made
            # before is in the catch-up rounds. Notified rounds run while the catch-up goes on.
            await self._start_subscriptions(rt)
            await self._initial_sync(rt)
            self._start_scheduler()

        task = asyncio.create_task(steps(), name="start-up")
        stop = asyncio.create_task(self.stop_event.wait(), name="stop-wait")
        try:
            while True:
                sdnotify.extend_timeout(START_EXTEND)
                done, _ = await asyncio.wait(
                    {task, stop}, timeout=START_EXTEND / 3, return_when=asyncio.FIRST_COMPLETED
                )
                if task in done:
                    task.result()  # start-up errors (mirror, config) end the daemon
                    return True
                if stop in done:
                    log.info("stop requested during start-up: cancelling the first sync")
                    task.cancel()
                    await asyncio.wait({task}, timeout=STOP_TIMEOUT)
                    return False
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()

    def request_stop(self) -> None:
        self.stop_event.set()

    def on_ready(self, callback: Callable[[], None]) -> None:
        self._on_ready.append(callback)

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))

    async def _shutdown(self, watchdog_task: asyncio.Task[None] | None) -> None:
        """Stop intake first, then let in-flight work finish (bounded); the outbox keeps the rest."""
        if self.webhook is not None:
            await self.webhook.stop()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.notified is not None:
            self.notified.close()
        if self.wakeups is not None:
            await self.wakeups.close(timeout=STOP_TIMEOUT, cancel_grace=CANCEL_GRACE)
        if self._alert_task is not None:
            self._alert_task.cancel()
            await asyncio.wait({self._alert_task}, timeout=CANCEL_GRACE)
        if watchdog_task is not None:  # last: keep pinging while the in-flight work finishes
            watchdog_task.cancel()
            await asyncio.gather(watchdog_task, return_exceptions=True)
        if self.health_listener is not None:
            await self.health_listener.stop()

    async def reload(self) -> None:
        """SIGHUP: reopen logs; take the new log level and debounce when the file still validates.

        Only what is safe to change under a running daemon is applied; credentials, URLs, the
        state directory and the listener need a restart.
        """
        sdnotify.reloading()
        try:
            syncd_log.reopen()
            if self.config_path is None:
                return
            try:
                fresh = await asyncio.to_thread(load_settings, self.config_path)
            except Exception as exc:
                log.error("reload refused: configuration invalid; keeping the running one", error=str(exc))
                return
            self.settings.log.level = fresh.log.level
            syncd_log.configure_logging(fresh.log.level, self.settings.log.format)
            syncd_log.register_secrets(fresh.secrets())
            if self.wakeups is not None:
                self.wakeups.cooldown = fresh.sync.debounce
            fresh.health.listen = self.settings.health.listen  # the listener stays where it is
            self.settings.health = fresh.health
            if self.progress is not None:
                self.progress.writer_timeout = fresh.health.writer_timeout
                self.progress.work_timeout = fresh.health.work_timeout
            log.info("configuration reloaded", log_level=fresh.log.level)
        finally:
            sdnotify.ready()

    # --- start-up -------------------------------------------------------------------------
    def _start_alert_dispatcher(self, rt: Runtime) -> None:
        """Alert delivery runs on its own task: a receiver that is down never blocks the J1 push."""
        pipeline = rt.engine.ctx.alerts
        if pipeline is None or not pipeline.targets:
            return
        from syncd.alerts.delivery import AlertDispatcher

        dispatcher = AlertDispatcher(MirrorAlertStore(rt.mirror), pipeline.targets, rt.session)
        self._alert_task = asyncio.create_task(dispatcher.run_forever(self.alert_wake), name="alerts")

    async def _prepare_j1(self, rt: Runtime) -> None:
        """Close J1 jobs a crash left open, and probe the account's undocumented behaviours once
        (only a proven behaviour enables a faster write path; see docs/j1-writes.md)."""
        writer = rt.engine.writer
        try:
            left = await writer.start()
            if left:
                log.warning(
                    "closed J1 jobs left open by a crash; their partitions are re-sent by DIFF", jobs=left
                )
            if self.settings.j1.strategy == "auto" and not writer.capabilities.probed:
                capabilities = await rt.probe_j1()
                proven = [n for n, f in capabilities.findings.items() if f.ok]
                log.info("J1 capability probe done", proven=proven)
        except Exception as exc:
            # J1 unreachable at start: the documented path needs no probe; pushes retry later.
            log.warning("J1 start-up checks failed; using the documented write path", error=_short(exc))

    async def _initial_sync(self, rt: Runtime) -> None:
        """First run: a full resync (silent baseline). Later runs: catch up by delta, then push.

        Directory rounds run concurrently and, on a restart, are pushed as soon as they are done;
        the Intune polls run alongside, in their own order (their lookups read what the earlier
        ones stored), after the directory rounds only on a first run (they read its users).
        A J1 push that fails here does not stop the daemon: the rounds are committed, the outbox
        and the flagged partitions keep them and the scheduler retries them with back-off.
        """
        first = await rt.mirror.get_cursor("full_push") is None
        origins = list(rt.engine.sources)
        intune = [o for o in origins if o.startswith(INTUNE_PREFIX)]
        directory = [o for o in origins if o not in intune]
        directory_done = asyncio.Event()
        if first:
            log.info("no previous full sync: running the initial full resync (baseline, no alerts)")
            self._baseline_running = True

        async def rounds(unit: list[str], *, concurrent: bool) -> None:
            # The engine records and logs each failure; on a first run its types stay partial.
            if not unit:
                return
            report = await rt.engine.run_rounds(unit, force_full=first, concurrent=concurrent)
            if first:
                for origin, reason in sorted(report.failed.items()):
                    log.warning("initial round failed; its types are partial", origin=origin, error=reason)

        async def directory_chain() -> None:
            try:
                await rounds(directory, concurrent=True)
            finally:
                directory_done.set()
            if not first:
                await self._push()  # the directory's catch-up reaches J1 now, Intune or not
            await self._initial_sign_ins(rt)

        async def intune_chain() -> None:
            if first:
                await directory_done.wait()
            await rounds(intune, concurrent=False)

        await asyncio.gather(directory_chain(), intune_chain())
        if first:
            try:
                await self._push_full()
            finally:
                self._baseline_running = False
            if not await rt.engine.writer.has_work():
                return  # nothing came in meanwhile (failed partitions wait for their back-off)
        await self._push()  # the Intune polls; or what notified rounds committed during the DIFF

    async def _initial_sign_ins(self, rt: Runtime) -> None:
        """The first sign-in poll runs before READY (it may restage every user once), so it never
        holds the users' round lock while notifications wait; later ones follow `sign_in_interval`."""
        if "users" not in rt.engine.sources or self.settings.sync.sign_in_activity == "off":
            return
        try:
            await rt.engine.poll_sign_ins()
        except Exception as exc:
            log.warning("last sign-in poll failed", error=_short(exc))

    async def _push_full(self) -> None:
        """The DIFF of every partition of a (first or periodic) full resync. Partitions that fail
        stay flagged in the mirror and later pushes retry them with back-off."""
        assert self.rt is not None
        try:
            await self.rt.engine.push_full()
        except Exception as exc:
            self._push_failed(exc)
            return
        await self.rt.mirror.set_cursor("full_push", str(time.time()))
        self.state.last_push_ok = time.time()
        self.state.last_push_error = None

    def _push_failed(self, exc: BaseException) -> None:
        self.state.last_push_error = _short(exc)
        code = exc.code if isinstance(exc, J1Error) else None
        metrics.J1_ERRORS.labels(code=code or type(exc).__name__).inc()
        log.warning("push to J1 failed; the outbox keeps the changes", error=self.state.last_push_error)

    @property
    def webhook_url(self) -> str | None:
        return self.webhook.url if self.webhook is not None else None

    @property
    def health_url(self) -> str | None:
        return self.health_listener.url if self.health_listener is not None else None

    def _limits(self) -> ListenerLimits:
        s = self.settings.webhook
        return ListenerLimits(
            read_timeout=s.read_timeout,
            keepalive_timeout=s.keepalive_timeout,
            max_connections=s.max_connections,
        )

    async def _start_health(self) -> None:
        """`/healthz` and `/metrics` on their own (loopback by default) listener, from the start."""
        host, port = self.settings.health_address()
        self.health_listener = await Listener.start(
            create_health_app(self.health), host, port, name="health", limits=self._limits()
        )

    async def _start_webhook(self) -> None:
        """The public notification listener; only when change notifications are on."""
        assert self.rt is not None
        s = self.settings.webhook
        if not s.public_url:
            return
        hooks = WebhookHooks(wake=self._hint, lifecycle=self._lifecycle, notified=self._notified)
        app = create_webhook_app(
            hooks,
            client_state=s.client_state.get() if s.client_state else None,
            tenant_id=self.rt.tenant_id,  # the GUID Graph puts in notifications, whatever the config says
            max_body_bytes=s.max_body_bytes,
            read_timeout=s.read_timeout,
            path_prefix=urlsplit(s.public_url).path,
        )
        ssl_ctx = None
        if s.tls_cert and s.tls_key:
            import ssl

            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_ctx.load_cert_chain(s.tls_cert, s.tls_key)
        host, port = self.settings.listen_address()
        self.webhook = await Listener.start(
            app, host, port, name="webhook", limits=self._limits(), ssl_context=ssl_ctx
        )

    async def _start_subscriptions(self, rt: Runtime) -> None:
        s = self.settings.webhook
        origins = [o for o in NOTIFIED_ORIGINS if o in rt.engine.sources]
        if not s.public_url:
            log.info(
                "no [webhook] public_url: running without change notifications (safety-net delta rounds only)"
            )
            return
        if not origins:
            return
        base = s.public_url.rstrip("/")
        self.subs = SubscriptionManager(
            rt.subscriptions_api,
            rt.mirror,
            notification_url=f"{base}/notifications",
            lifecycle_url=f"{base}/lifecycle",
            client_state=s.client_state.get() if s.client_state else "",
            resources=origins,
            on_wake=self._hint,
        )
        try:
            self.state.subscriptions = await self.subs.ensure()
        except Exception as exc:
            log.error(
                "could not create change-notification subscriptions; safety-net rounds continue",
                error=str(exc)[:300],
            )

    def _start_scheduler(self) -> None:
        assert self.rt is not None
        sync = self.settings.sync
        sched = AsyncIOScheduler(timezone="UTC")

        def every(
            job_id: str,
            seconds: float,
            job: Callable[..., Awaitable[None]],
            *args: str,
            catch_up: bool = False,
        ) -> None:
            """An interval job that never overlaps itself and runs once for a backlog; with
            ``catch_up`` a run missed by up to one interval (a busy loop) still happens."""
            late = {"misfire_grace_time": max(1, int(seconds))} if catch_up else {}
            sched.add_job(
                job, "interval", args=list(args), seconds=seconds, id=job_id, coalesce=True, max_instances=1,
                **late,
            )

        for origin in self.rt.engine.sources:
            every(f"round:{origin}", self._interval(origin), self._scheduled_hint, origin, catch_up=True)
        every("push", max(sync.drain_interval, 0.5), self._retry_push)
        if "users" in self.rt.engine.sources and sync.sign_in_activity != "off":
            every("sign-ins", sync.sign_in_interval, self._sign_ins_hint, catch_up=True)
        if self.subs is not None:
            every("renew", 3600, self._renew)
        if sync.full_resync_interval > 0:
            every("full", sync.full_resync_interval, self._full_resync)
        every("status", 15, self._status_job)
        sched.start()
        self.scheduler = sched

    def _interval(self, origin: str) -> float:
        sync = self.settings.sync
        if origin == "devices":
            return sync.devices_delta_interval
        if origin in ("users", "groups"):
            return sync.safety_net_interval
        if origin == "account":
            return max(sync.intune_policies_interval, sync.safety_net_interval)
        collection = COLLECTION_BY_ORIGIN.get(origin)
        if collection is not None and collection.cadence == "devices":
            return sync.intune_devices_interval
        return sync.intune_policies_interval

    # --- work -----------------------------------------------------------------------------
    async def _hint(self, origin: str) -> None:
        """A notification or lifecycle event asks for a round of `origin` (never carries data)."""
        assert self.wakeups is not None
        if self.rt is not None and origin in self.rt.engine.sources:
            self.wakeups.request(origin)

    async def _notified(self, origin: str, ids: list[str]) -> None:
        """A notification named these objects: look again until a delta round shows them."""
        if self.notified is not None and self.rt is not None and origin in self.rt.engine.sources:
            self.notified.notified(origin, ids)

    async def _scheduled_hint(self, origin: str) -> None:
        await self._hint(origin)

    async def _sign_ins_hint(self) -> None:
        if self.wakeups is not None:
            self.wakeups.request(SIGN_INS)

    async def _work(self, key: str) -> None:
        assert self.rt is not None and self.wakeups is not None
        log.debug("wake-up", key=key, run=self.wakeups.runs.get(key, 0))
        if key == PUSH:
            await self._push()
            return
        if key == FULL:
            await self._run_full_resync()
            return
        if key == SIGN_INS:
            report = await self.rt.engine.poll_sign_ins()
        else:
            try:
                report = await self.rt.engine.run_round(key)
            except Exception:
                if self.notified is not None:
                    self.notified.round_done(key, ())  # failed: look again later all the same
                raise
            if self.notified is not None:
                self.notified.round_done(key, report.changed_ids)
        if report.alerts:
            self.alert_wake.set()
        if key == "devices" and report.changed_ids and not report.baseline:
            await self._follow_devices(report.changed_ids, report.kind)
        depth = await self.rt.mirror.outbox_depth()
        metrics.OUTBOX_DEPTH.set(depth)
        if report.outbox_added or depth:
            self.wakeups.request(PUSH)

    async def _follow_devices(self, changed: list[str], kind: str) -> None:
        """Entra devices changed: re-fetch just their managed devices (their compliance alerts
        then reach the dispatcher at once), or poll managed devices when too many changed."""
        assert self.rt is not None and self.wakeups is not None
        source = self.rt.engine.sources.get(MANAGED_DEVICES)
        if not isinstance(source, FollowsEntraDevices):
            return
        if kind != "delta" or len(changed) > MAX_DEVICE_REFETCH:
            self.wakeups.request(MANAGED_DEVICES)
            return
        follow = await source.refetch_for_entra_devices(self.rt.engine, changed)
        if follow is not None and follow.alerts:
            self.alert_wake.set()

    async def _push(self) -> None:
        assert self.rt is not None
        if self._baseline_running:
            return  # the baseline DIFF carries it; what lands during the DIFF follows right after
        try:
            report = await self.rt.engine.drain()
        except Exception as exc:
            self._push_failed(exc)
            return
        if report.deferred:
            return  # J1 is backing off after transient failures: not a success either
        if report.failed_partitions or report.verification_failures:
            self.state.last_push_error = (
                f"{report.failed_partitions + report.verification_failures} J1 partition job(s) failed;"
                " retried with back-off"
            )
            return
        self.state.last_push_ok = time.time()
        self.state.last_push_error = None

    async def _retry_push(self) -> None:
        """Scheduled: push again when something waits for J1 and no back-off holds it."""
        assert self.rt is not None and self.wakeups is not None
        if self.wakeups.busy(PUSH) or self.rt.engine.writer.retry_at() > time.time():
            return
        if await self.rt.engine.writer.has_work():
            self.wakeups.request(PUSH)

    async def _renew(self) -> None:
        if self.subs is None:
            return
        try:
            await self.subs.renew_due()
        except Exception as exc:
            log.warning("subscription renewal failed", error=str(exc)[:300])

    async def _lifecycle(self, sub_id: str, event: str) -> None:
        if self.subs is None:
            return
        asyncio.get_running_loop().create_task(self._lifecycle_task(sub_id, event))

    async def _lifecycle_task(self, sub_id: str, event: str) -> None:
        assert self.subs is not None
        try:
            resource = await self.subs.handle_lifecycle(sub_id, event)
        except Exception as exc:
            log.warning("lifecycle handling failed", event=event, error=str(exc)[:300])
            return
        if resource is not None and event in ("missed", "subscriptionRemoved") and self.notified:
            # changes were lost: the woken round may come before they replicate, so keep looking
            self.notified.lost(resource)

    async def _full_resync(self) -> None:
        assert self.wakeups is not None
        self.wakeups.request(FULL)

    async def _run_full_resync(self) -> None:
        """Every source at once (the engine orders the ones that read each other), then the DIFF."""
        assert self.rt is not None
        report = await self.rt.engine.run_rounds(list(self.rt.engine.sources), force_full=True)
        for origin, reason in sorted(report.failed.items()):
            log.warning("full round failed; its types are partial", origin=origin, error=reason)
        await self._push_full()

    # --- health and status -----------------------------------------------------------------
    async def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy = ready, no resource later than ``[health] max_lag`` past its schedule, and the
        outbox drains (not pending with no successful push for ``outbox_stuck_after``)."""
        assert self.rt is not None
        now = time.time()
        engine = self.rt.engine
        max_lag = self.settings.health.max_lag
        lags: dict[str, float | None] = {}
        stale: list[str] = []
        for origin in engine.sources:
            last = engine.last_success.get(origin)
            lag = None if last is None else round(now - last, 1)
            lags[origin] = lag
            reference = last if last is not None else self.state.started
            # A resource is stale when it is more than max_lag behind its own schedule: a source
            # polled hourly (account, Intune policies) is not late 15 minutes after its last round.
            if now - reference > max_lag + self._interval(origin):
                stale.append(origin)
        depth = await self.rt.mirror.outbox_depth()
        metrics.OUTBOX_DEPTH.set(depth)
        last_ok = self.state.last_push_ok or self.state.started
        stuck = depth > 0 and now - last_ok > self.settings.health.outbox_stuck_after
        j1_problems = engine.writer.health_problems()
        stalled = self.progress.problem if self.progress is not None else None
        healthy = self.state.ready and not stale and not stuck and not stalled and not j1_problems
        return healthy, {
            "ready": self.state.ready,
            "lag_seconds": lags,
            "stale": stale,
            "outbox_depth": depth,
            "outbox_stuck": stuck,
            "stalled": stalled,
            "last_push_error": self.state.last_push_error,
            "j1_problems": j1_problems,
        }

    async def _status_job(self) -> None:
        await self._status()

    async def _status(self) -> None:
        """One STATUS= line for `systemctl status`: lag per notified resource, outbox, push state."""
        if self.rt is None:
            return
        now = time.time()
        parts = []
        for origin in ("users", "groups", "devices"):
            last = self.rt.engine.last_success.get(origin)
            if last is not None:
                parts.append(f"{origin}={now - last:.0f}s")
        text = "lag " + " ".join(parts) if parts else "lag unknown (no round yet)"
        try:
            text += f"; outbox {await self.rt.mirror.outbox_depth()}"
        except Exception as exc:
            text += f"; mirror unreadable ({type(exc).__name__})"
        if self.state.last_push_error:
            text += "; J1 push failing"
        if self.rt.engine.writer.health_problems():
            text += "; a J1 job did not do what was sent (see /healthz)"
        if self.progress is not None and self.progress.problem:
            text = f"stalled, watchdog ping withheld: {self.progress.problem}; {text}"
        sdnotify.status(text)


def _short(exc: BaseException) -> str:
    """One line naming the error (our errors carry no secrets; the log redacts anyway)."""
    return f"{type(exc).__name__}: {str(exc)[:200]}"
