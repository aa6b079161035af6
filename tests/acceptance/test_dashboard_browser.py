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
    can read the old one, or an element of it just as it goes away. Asked about the old page
    in the middle of the navigation, ChromeDriver may answer "Node with given id does not
    belong to the document" rather than a stale element: the page has gone either way.
    """
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")

    def left(_driver: Any) -> bool:
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc.msg):
                return True
            raise
        return False

    element.click()
    wait = WebDriverWait(driver, NAVIGATION_TIMEOUT)
    wait.until(left)
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


#: Surgery 12 days ago: the pain check-ins of days 4 and 11 have been asked.
CHECKED = datetime.now(UTC).date() - timedelta(days=12)


def local_evening(day: int, hour: int, minute: int = 30) -> str:
    """``day`` days after the check-in patients' surgery, at ``hour`` New York time, as UTC ISO."""
    from zoneinfo import ZoneInfo

    moment = datetime.combine(
        CHECKED + timedelta(days=day), datetime.min.time(), ZoneInfo("America/New_York")
    ).replace(hour=hour, minute=minute)
    return moment.astimezone(UTC).isoformat()


@pytest.fixture
def answered(cli: Cli) -> Iterator[Served]:
    """Dana answered her day-4 pain check-in 5 and her day-11 one 9 (urgent), through
    ``reminders inbound``; a coordinator and a viewer exist; the dashboard is served."""
    require_browser()
    cli.write_patients(
        [{**patients()[0], "surgery_date": CHECKED}, {**patients()[1], "surgery_date": CHECKED}]
    )
    for day, score in ((4, "5"), (11, "9")):
        cli("tick", "--now", local_evening(day, 18))
        done = cli(
            "inbound", "--from", "+12015550123", "--body", score, "--now", local_evening(day, 19)
        )
        assert "Traceback" not in done.stderr
    add_user(cli.folder, cli.database, COORDINATOR, "coordinator")
    add_user(cli.folder, cli.database, VIEWER, "viewer")
    with serve_dashboard(cli.folder, cli.database) as served:
        yield served


def test_an_urgent_reply_is_acknowledged_from_the_worklist_and_a_viewer_cannot_touch_it(
    answered: Served,
) -> None:
    """The urgent 9/10 from `reminders inbound` heads the worklist; the coordinator acknowledges it with a note and it leaves; Dana's page shows who acknowledged it and draws her pain chart; a viewer sees no button and a forged POST of theirs gets 403 and changes nothing."""
    import httpx
    from selenium.webdriver.common.by import By

    from reminders.web.dashboard.auth import SESSION_COOKIE

    with chromium() as driver:
        sign_in(driver, answered.url, COORDINATOR, PASSWORD)
        first = driver.find_element(By.CSS_SELECTOR, "#alerts li.item")
        assert first.find_element(By.CSS_SELECTOR, ".level").text.lower() == "urgent"
        assert first.find_element(By.CSS_SELECTOR, "a.patient").text == "P-1001"
        assert first.find_element(By.CSS_SELECTOR, ".answer").text == "9/10"
        alert_id = first.get_attribute("id").removeprefix("alert-")
        first.find_element(By.NAME, "note").send_keys("Called Dana; seen in clinic today")
        follow(driver, first.find_element(By.CSS_SELECTOR, "button.ack"))
        assert heading(driver) == "Worklist"
        assert driver.find_elements(By.ID, f"alert-{alert_id}") == []
        driver.get(f"{answered.url}/app/patients/P-1001")
        item = driver.find_element(By.ID, f"alert-{alert_id}")
        assert item.find_element(By.CSS_SELECTOR, ".taken .by").text == COORDINATOR
        assert "Called Dana; seen in clinic today" in item.text
        chart = driver.find_element(By.CSS_SELECTOR, "figure.pain svg")
        assert len(chart.find_elements(By.TAG_NAME, "circle")) == 2
        assert chart.size["width"] > 200
        follow(driver, driver.find_element(By.CSS_SELECTOR, ".who button"))

        sign_in(driver, answered.url, VIEWER, PASSWORD)
        driver.get(f"{answered.url}/app/patients/P-1001")
        assert driver.find_elements(By.CSS_SELECTOR, "form.actions button") == []
        token = driver.find_element(By.CSS_SELECTOR, ".who input[name=csrf]").get_attribute("value")
        cookie = driver.get_cookie(SESSION_COOKIE)
        assert cookie is not None
        forged = httpx.post(
            f"{answered.url}/app/alerts/{alert_id}/resolve",
            data={"csrf": token, "note": "closing it as a viewer"},
            cookies={SESSION_COOKIE: cookie["value"]},
        )
        assert forged.status_code == 403
        driver.refresh()
        item = driver.find_element(By.ID, f"alert-{alert_id}")
        assert item.find_element(By.CSS_SELECTOR, ".status").text.lower() == "acknowledged"
        assert "closing it as a viewer" not in item.text
