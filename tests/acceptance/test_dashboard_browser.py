"""The dashboard in a real browser (SPEC 12): headless Chromium driving ``reminders serve``.

The service runs as a subprocess on loopback with the dashboard on; accounts are made
with ``reminders users add``; the patients' first messages went out through ``tick``
(console delivery). Everything a coordinator does here goes through the browser:
typing, clicking, following redirects, opening a message, signing out.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.acceptance.browser import (
    PASSWORD,
    PHONE,
    Served,
    add_user,
    chromium,
    require_browser,
    serve_dashboard,
)
from tests.acceptance.conftest import Cli

COORDINATOR = "kim@example.com"
#: Seconds a click may take to load the next page (generous: the machine may be busy).
NAVIGATION_TIMEOUT = 60
VIEWER = "lee@example.com"
#: Surgery two days ago: the day-1 message is due at 10:00 New York time yesterday.
SURGERY = datetime.now(UTC).date() - timedelta(days=2)


def patients() -> list[dict[str, Any]]:
    """Two fictional patients in New York."""
    return [
        {
            "id": "P-1001",
            "first_name": "Dana",
            "last_name": "Reyes",
            "phone": "+12015550123",
            "email": "dana.reyes@example.com",
            "surgery_date": SURGERY,
            "timezone": "America/New_York",
        },
        {
            "id": "P-1002",
            "first_name": "Luis",
            "last_name": "Ortega",
            "phone": "+19735550142",
            "surgery_date": SURGERY,
            "timezone": "America/New_York",
            "language": "es",
        },
    ]


@pytest.fixture
def served(cli: Cli) -> Iterator[Served]:
    """The dashboard of two patients whose day-1 messages went out, with a coordinator and a viewer."""
    require_browser()
    cli.write_patients(patients())
    day1 = datetime.combine(SURGERY + timedelta(days=1), datetime.min.time(), UTC)
    cli("tick", "--now", (day1 + timedelta(hours=15, minutes=30)).isoformat())
    add_user(cli.folder, cli.database, COORDINATOR, "coordinator")
    add_user(cli.folder, cli.database, VIEWER, "viewer")
    with serve_dashboard(cli.folder, cli.database) as served:
        yield served


def sign_in(driver: Any, url: str, email: str, password: str) -> None:
    """Fill in and submit the sign-in form."""
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/app/signin")
    driver.find_element(By.ID, "email").send_keys(email)
    driver.find_element(By.ID, "password").send_keys(password)
    follow(driver, driver.find_element(By.CSS_SELECTOR, "form button[type=submit]"))


def follow(driver: Any, element: Any) -> None:
    """Click ``element`` and wait until the page it leads to has loaded.

    A click returns before the browser has left the page, so reading the next page at once
    can read the old one, or an element of it just as it goes away.
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    wait = WebDriverWait(driver, NAVIGATION_TIMEOUT)
    wait.until(expected_conditions.staleness_of(page))
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")


def heading(driver: Any) -> str:
    """The page's first heading."""
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "h1").text)


def test_a_coordinator_signs_in_finds_a_patient_reads_a_sent_message_and_signs_out(
    served: Served,
) -> None:
    """Redirected to sign-in, a wrong password is refused on the page; the right one opens the worklist; a name search finds Dana; her page shows the day-1 text as sent; sign-out closes the session."""
    from selenium.webdriver.common.by import By

    with chromium() as driver:
        driver.get(f"{served.url}/app/worklist")
        assert heading(driver) == "Sign in"
        sign_in(driver, served.url, COORDINATOR, "not the password at all")
        assert driver.find_element(By.CSS_SELECTOR, ".error").text == "Wrong email or password."
        sign_in(driver, served.url, COORDINATOR, PASSWORD)
        assert heading(driver) == "Worklist"
        assert f"{COORDINATOR} (coordinator)" in driver.find_element(By.CLASS_NAME, "who").text
        follow(driver, driver.find_element(By.LINK_TEXT, "Patients"))
        driver.find_element(By.ID, "q").send_keys("dana")
        follow(driver, driver.find_element(By.CSS_SELECTOR, "form.search button"))
        assert "dana" not in driver.current_url.lower()
        follow(driver, driver.find_element(By.LINK_TEXT, "P-1001"))
        assert driver.current_url == f"{served.url}/app/patients/P-1001"
        assert heading(driver) == "P-1001 Dana Reyes"
        first = driver.find_element(By.CSS_SELECTOR, "ol.timeline details")
        first.find_element(By.TAG_NAME, "summary").click()
        text = first.find_element(By.CSS_SELECTOR, "pre.body").text
        assert text.startswith("NJOI: Hi Dana.")
        assert "Reply STOP to opt out." in text
        follow(driver, driver.find_element(By.CSS_SELECTOR, ".who button"))
        assert heading(driver) == "Sign in"
        driver.get(f"{served.url}/app/worklist")
        assert heading(driver) == "Sign in"


def test_the_pages_fit_a_phone_screen(served: Served) -> None:
    """At 390 pixels wide every page lays out without sideways scrolling."""
    with chromium(PHONE) as driver:
        sign_in(driver, served.url, VIEWER, PASSWORD)
        for path in ("/app/worklist", "/app/patients", "/app/patients/P-1002", "/app/overview"):
            driver.get(f"{served.url}{path}")
            wide = driver.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert wide <= 0, (path, wide)
