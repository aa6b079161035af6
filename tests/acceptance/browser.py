"""A real browser and a real dashboard: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by Selenium, against ``reminders serve`` run as a subprocess.

Chromium starts with a fresh profile and nothing that reaches the network by itself
(no sync, no component updates, no background networking, no QUIC). Without the
packages the browser tests are skipped with the reason, except under ``CI=true``, where
their absence fails the run (``.ci/run`` installs them).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from reminders.testing import runner
from reminders.testing.peer import PORT_ATTEMPTS, PORT_IN_USE, free_port

CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMEDRIVER: Final = Path("/usr/bin/chromedriver")
FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
SECRET: Final = "browser-test-secret-key-0123456789"
PASSWORD: Final = "correct horse battery staple"
DESKTOP: Final = (1280, 900)
PHONE: Final = (390, 844)


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    return (
        f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver)"
        if missing
        else None
    )


def require_browser() -> None:
    """Skip (or, under CI=true, fail) when Chromium or its driver is missing."""
    reason = browser_missing()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI needs the browser tests: {reason}")
    pytest.skip(reason)


@contextmanager
def chromium(size: tuple[int, int] = DESKTOP) -> Iterator[object]:
    """A headless Chromium session (a Selenium WebDriver) with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options = Options()
        options.binary_location = str(CHROMIUM)
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={size[0]},{size[1]}")
        driver = webdriver.Chrome(
            service=Service(executable_path=str(CHROMEDRIVER)), options=options
        )
        try:
            yield driver
        finally:
            driver.quit()


def click_and_load(driver: Any, element: Any) -> None:
    """Click ``element`` (a link or a submit button) and wait until the next page replaced this one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 15).until(expected_conditions.staleness_of(page))


@dataclass
class Served:
    """A ``reminders serve`` process with the dashboard on, and where it listens."""

    url: str
    process: subprocess.Popen[bytes]
    env: dict[str, str]


@contextmanager
def serve_dashboard(
    config: Path, database: str, env: Mapping[str, str] | None = None, port: int | None = None
) -> Iterator[Served]:
    """``reminders serve`` on a loopback port (a free one by default) with REMINDERS_SECRET_KEY
    set; stopped after.

    A free port picked here that another process takes before ``serve`` binds it makes
    ``serve`` exit saying so; it is then started again on another free port.
    """
    for attempt in range(1, PORT_ATTEMPTS + 1):
        chosen = port or free_port()
        url = f"http://127.0.0.1:{chosen}"
        settings = {
            "REMINDERS_SECRET_KEY": SECRET,
            "REMINDERS_HTTP_PORT": str(chosen),
            "REMINDERS_PUBLIC_URL": url,
            **(env or {}),
        }
        with tempfile.TemporaryFile() as errors:
            process = runner.spawn(
                config, database, "serve", env=settings, stdout=subprocess.DEVNULL, stderr=errors
            )
            try:
                if _healthy(process, url):
                    yield Served(url, process, settings)
                    return
                errors.seek(0)
                said = errors.read().decode("utf-8", "replace")
                exited = f"reminders serve exited with {process.returncode}\n{said}"
                assert port is None, exited
                assert PORT_IN_USE in said.lower(), exited
                assert attempt < PORT_ATTEMPTS, f"no free port after {attempt} tries"
            finally:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _healthy(process: subprocess.Popen[bytes], url: str) -> bool:
    """Wait until ``url``/healthz answers 200 (True) or the process exits (False)."""
    deadline = time.monotonic() + 60
    while process.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "reminders serve did not answer within 60 s"
        time.sleep(0.1)
    return False


def add_user(config: Path, database: str, email: str, role: str) -> None:
    """``reminders users add EMAIL --role ROLE --password-stdin`` with :data:`PASSWORD`."""
    done = runner.run(
        config, database, "users", "add", email, "--role", role, "--password-stdin", stdin=PASSWORD
    )
    assert done.code == 0, str(done)
