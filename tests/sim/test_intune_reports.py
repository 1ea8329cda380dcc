"""The simulated Intune report exports behave like the documented service: asynchronous jobs, a
file on another host that refuses the Graph token, the report's real columns in a zipped CSV."""

from __future__ import annotations

import asyncio
import csv
import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from bench.kit.tenants import intune_of, intune_tenant
from syncd.sim.harness import SimHarness
from syncd.sim.intune_reports import REPORTS, ReportConfig, report_store
from syncd.sources.intune_bulk import INSTALL_COLUMNS, INSTALL_REPORT, INVENTORY_COLUMNS, INVENTORY_REPORT
from tests.helpers.harness import running_harness

JOBS = "/beta/deviceManagement/reports/exportJobs"


class Client:
    """A bare Graph client for the simulator: token, JSON calls, raw downloads."""

    def __init__(self, h: SimHarness, session: aiohttp.ClientSession, token: str) -> None:
        self.h = h
        self.session = session
        self.auth = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        url = self.h.sims.graph_http_url + path
        async with self.session.request(method, url, json=body, headers=self.auth) as resp:
            data = await resp.json(content_type=None)
            assert resp.status == status, (path, resp.status, data)
            return data

    async def until_done(self, job_id: str) -> dict[str, Any]:
        for _ in range(100):
            job: dict[str, Any] = await self.call("GET", f"{JOBS}/{job_id}")
            if job["status"] in ("completed", "failed"):
                return job
            await asyncio.sleep(0.05)
        raise AssertionError("job never finished")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    async with running_harness(intune_tenant(managed_devices=40), tmp_path, notifications=False) as h:
        report_store(h.sims.graph).config.job_seconds = 0.3
        form = {
            "grant_type": "client_credentials",
            "client_id": h.sims.client_id,
            "client_secret": h.sims.client_secret,
            "scope": f"{h.sims.graph_http_url}/.default",
        }
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session:
            async with session.post(
                f"{h.sims.graph_http_url}/{h.sims.tenant_id}/oauth2/v2.0/token", data=form
            ) as resp:
                token = (await resp.json())["access_token"]
            yield Client(h, session, token)


def rows_of(blob: bytes) -> tuple[list[str], list[list[str]], bytes]:
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        (name,) = archive.namelist()
        raw = archive.read(name)
    assert name.endswith(".csv")
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    return table[0], table[1:], raw


async def test_a_job_runs_asynchronously_and_its_file_lives_on_another_host(client: Client) -> None:
    select = ["ApplicationKey", "ApplicationName", "DeviceId", "Platform"]
    job = await client.call(
        "POST", JOBS, {"reportName": "AppInvRawData", "select": select, "format": "csv"}, status=201
    )
    assert job["status"] == "notStarted" and job["url"] is None
    assert job["id"].startswith("AppInvRawData_") and job["expirationDateTime"] == "0001-01-01T00:00:00Z"
    seen = {job["status"]}
    while job["status"] not in ("completed", "failed"):
        await asyncio.sleep(0.05)
        job = await client.call("GET", f"{JOBS}('{job['id']}')")  # the OData key form works too
        seen.add(job["status"])
    assert job["status"] == "completed" and "inProgress" in seen
    listed = await client.call("GET", JOBS)
    assert job["id"] in {j["id"] for j in listed["value"]}

    url = job["url"]
    graph, storage = urlsplit(client.h.sims.graph_url), urlsplit(url)
    assert storage.scheme == "https" and storage.netloc != graph.netloc
    # The Graph token is refused there; without it the signed URL serves the ZIP.
    async with client.session.get(url, headers=client.auth) as resp:
        assert resp.status == 403 and "AuthenticationFailed" in await resp.text()
    async with client.session.get(url) as resp:
        assert resp.status == 200
        blob = await resp.read()
    header, rows, raw = rows_of(blob)
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM (the strict reading; a switch turns it off)
    assert header == select
    intune = intune_of(client.h.tenant)
    expected = {
        (a["id"], d["id"])
        for d in intune.list("managedDevices")
        for a in intune.sub("managedDevices", d["id"], "detectedApps")
    }
    assert {(r[0], r[2]) for r in rows} == expected and len(rows) == len(expected)
    # A tampered signature or an unknown blob are refused.
    async with client.session.get(url.replace("sig=", "sig=x")) as resp:
        assert resp.status == 403
    async with client.session.get(url.replace(".zip", "-other.zip")) as resp:
        assert resp.status == 404


async def test_requests_the_report_does_not_take_are_400(client: Client) -> None:
    for body, fragment in (
        ({"reportName": "NoSuchReport"}, "report name"),
        ({"reportName": "AppInvRawData", "select": ["Nope"]}, "select"),
        ({"reportName": "DeviceInstallStatusByApp", "select": ["DeviceId"]}, "requires a filter"),
        ({"reportName": "AppInvRawData", "filter": "(ApplicationKey eq 'x')"}, "not supported"),
        ({"reportName": "AppInvRawData", "format": "pdf"}, "Format"),
    ):
        err = await client.call("POST", JOBS, body, status=400)
        assert err["error"]["code"] == "BadRequest" and fragment in err["error"]["message"], body
    report_store(client.h.sims.graph).config.unavailable = ["AppInvRawData"]
    await client.call("POST", JOBS, {"reportName": "AppInvRawData"}, status=400)
    await client.call("GET", f"{JOBS}/AppInvRawData_nope", status=404)


async def test_install_status_report_localization_and_filters(client: Client) -> None:
    intune = intune_of(client.h.tenant)
    app = next(a for a in intune.list("mobileApps") if intune.sub("mobileApps", a["id"], "deviceStatuses"))
    statuses = intune.sub("mobileApps", app["id"], "deviceStatuses")
    select = ["DeviceId", "AppInstallState", "InstallState", "ErrorCode"]
    flt = f"(ApplicationId eq '{app['id']}')"
    jobs = {}
    for mode in ("LocalizedValuesAsAdditionalColumn", "ReplaceLocalizableValues"):
        body = {
            "reportName": "DeviceInstallStatusByApp",
            "select": select,
            "filter": flt,
            "localizationType": mode,
        }
        jobs[mode] = await client.until_done((await client.call("POST", JOBS, body, status=201))["id"])
    files = {}
    for mode, job in jobs.items():
        async with client.session.get(job["url"]) as resp:
            files[mode] = rows_of(await resp.read())
    header, rows, _ = files["LocalizedValuesAsAdditionalColumn"]
    assert header == ["DeviceId", "AppInstallState", "AppInstallState_loc", "InstallState", "ErrorCode"]
    assert {r[0] for r in rows} == {s["deviceId"] for s in statuses}
    assert all(r[1].isdigit() for r in rows)  # the raw value; the readable one is in *_loc
    header, rows, _ = files["ReplaceLocalizableValues"]
    assert header == select
    by_device = {s["deviceId"]: s for s in statuses}
    for device, readable, state, code in rows:
        assert state == by_device[device]["installState"] and int(code) == by_device[device]["errorCode"]
        assert not readable.isdigit()


async def test_jobs_can_fail_and_creating_needs_a_write_permission(client: Client) -> None:
    store = report_store(client.h.sims.graph)
    store.config.fail_next = 1
    job = await client.call("POST", JOBS, {"reportName": "AppInvRawData"}, status=201)
    assert (await client.until_done(job["id"]))["status"] == "failed"
    writes = [
        "DeviceManagementConfiguration.ReadWrite.All",
        "DeviceManagementApps.ReadWrite.All",
        "DeviceManagementManagedDevices.ReadWrite.All",
    ]
    async with client.session.put(
        client.h.sims.graph_http_url + "/_sim/permissions", json={"denied_permissions": writes}
    ) as resp:
        assert resp.status == 200
    err = await client.call("POST", JOBS, {"reportName": "AppInvRawData"}, status=403)
    assert err["error"]["code"] == "Forbidden"
    store.config.read_permissions_ok = True  # the other reading of the docs
    await client.call("POST", JOBS, {"reportName": "AppInvRawData"}, status=201)


def test_the_documented_columns_are_modelled() -> None:
    """Each report's declared columns are exactly what its rows carry, and cover what syncd reads."""
    intune = intune_tenant(managed_devices=10).intune
    assert intune is not None
    app = next(a for a in intune.list("mobileApps") if intune.sub("mobileApps", a["id"], "deviceStatuses"))
    filters = {"AppInvRawData": {}, "DeviceInstallStatusByApp": {"ApplicationId": app["id"]}}
    for name, spec in REPORTS.items():
        rows = list(spec.rows(intune, filters[name], ReportConfig()))
        assert rows, name
        for row in rows:
            assert set(row) == set(spec.columns) | {f"{c}_loc" for c in spec.localizable}, name
    assert set(INVENTORY_COLUMNS) <= set(REPORTS[INVENTORY_REPORT].columns)
    assert set(INSTALL_COLUMNS) <= set(REPORTS[INSTALL_REPORT].columns)
    assert {"ApplicationId", "DeviceId", "InstallState", "ErrorCode", "HexErrorCode"} <= set(
        REPORTS["DeviceInstallStatusByApp"].columns
    )
    assert REPORTS["DeviceInstallStatusByApp"].required == {"ApplicationId"}
