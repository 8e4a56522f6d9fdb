"""A deploy script's client for the scheduler's REST API: plain ``requests``, no Django.

Written as Flask-APScheduler's users write theirs (the endpoints and JSON are the same), so it
works against either. ``tests/test_api_client.py`` runs it against a live server with a real
scheduler process; ``docs/rest-api.md`` shows it.

    python api_client.py https://example.com/scheduler ci-bot "$API_PASSWORD"
"""

from __future__ import annotations

import sys
import time
from typing import Any

import requests


class SchedulerClient:
    """The scheduler's endpoints, one method each."""

    def __init__(self, base_url: str, user: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.auth = (user, password)  # HTTP Basic; a token works the same way

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = self.session.request(method, f"{self.base_url}/{path}", timeout=10, **kwargs)
        if response.status_code >= 400:
            # Every error carries error_message, and errors by field for invalid input.
            body = response.json()
            raise RuntimeError(f"{response.status_code}: {body['error_message']}")
        return response

    def info(self) -> dict[str, Any]:
        return self._call("GET", "").json()

    def add_job(self, **job: Any) -> dict[str, Any]:
        return self._call("POST", "jobs", json=job).json()

    def get_jobs(self) -> list[dict[str, Any]]:
        return self._call("GET", "jobs").json()

    def get_job(self, job_id: str) -> requests.Response:
        return self._call("GET", f"jobs/{job_id}")

    def modify_job(self, job_id: str, etag: str | None = None, **changes: Any) -> dict[str, Any]:
        headers = {"If-Match": etag} if etag else {}
        response = self._call("PATCH", f"jobs/{job_id}", json=changes, headers=headers)
        return response.json()

    def pause_job(self, job_id: str) -> dict[str, Any]:
        return self._call("POST", f"jobs/{job_id}/pause").json()

    def resume_job(self, job_id: str) -> dict[str, Any]:
        return self._call("POST", f"jobs/{job_id}/resume").json()

    def run_job(self, job_id: str) -> str:
        """Queue a run now; returns the run's URL (the Location header)."""
        return self._call("POST", f"jobs/{job_id}/run").headers["Location"]

    def wait_for_run(self, url: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run: dict[str, Any] = self.session.get(url, timeout=10).json()
            if run["status"] not in ("QUEUED", "RUNNING"):
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run still {run['status']} after {timeout}s")
            time.sleep(0.2)

    def runs(self, job_id: str, **filters: Any) -> list[dict[str, Any]]:
        page = self._call("GET", f"jobs/{job_id}/runs", params=filters).json()
        return page["results"]

    def pause(self) -> None:
        self._call("POST", "pause")

    def resume(self) -> None:
        self._call("POST", "resume")

    def remove_job(self, job_id: str) -> None:
        self._call("DELETE", f"jobs/{job_id}")


def main(base_url: str, user: str, password: str) -> None:
    client = SchedulerClient(base_url, user, password)
    print("scheduler running:", client.info()["running"])
    # The same dict works in scheduler.add_job(**job) and in TASKS_SCHED["TASKS"].
    job = client.add_job(
        id="nightly-report",
        func="tests.testapp.jobs:add",
        trigger="cron",
        hour=2,
        minute=30,
        timezone="Europe/Berlin",
        args=[2, 3],
        replace_existing=True,
    )
    print("added", job["id"], "next run", job["next_run_time"])
    print("jobs:", [j["id"] for j in client.get_jobs()])
    # An edit guarded by the ETag read: refused (412) if someone changed the job meanwhile.
    etag = client.get_job("nightly-report").headers["ETag"]
    print("moved to", client.modify_job("nightly-report", etag=etag, hour=3)["hour"])
    run = client.wait_for_run(client.run_job("nightly-report"))
    print("run", run["id"], run["status"], "returned", run["return_value"])
    print("paused:", client.pause_job("nightly-report")["active"] is False)
    print("resumed:", client.resume_job("nightly-report")["active"] is True)
    print("successful runs:", len(client.runs("nightly-report", status="SUCCESSFUL")))
    client.pause()
    print("firing paused:", client.info()["firing"]["on"] is False)
    client.resume()
    client.remove_job("nightly-report")
    print("removed")


if __name__ == "__main__":
    main(*sys.argv[1:4])
