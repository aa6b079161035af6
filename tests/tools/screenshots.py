"""Screenshots of every dashboard page at desktop and phone width, for the README.

    python -m tests.tools.screenshots            # writes docs/screenshots/*.png

Fictional sample data only (555 numbers, example.com). The sample clinic's patients
are enrolled in a temporary folder; their texts go through the real twilio client to
the local Twilio-compatible endpoint, which refuses one number as invalid (21211),
reports another unsubscribed (21610) and is down (503) for a third since yesterday, so
the worklist has something in each section. ``reminders serve`` then shows the pages to
headless Chromium (the same helpers as the browser tests), signed in as a coordinator.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from reminders.testing import runner
from reminders.testing.twilio import FakeTwilio, Fault
from tests.acceptance.browser import (
    DESKTOP,
    PASSWORD,
    PHONE,
    SECRET,
    add_user,
    browser_missing,
    chromium,
    click_and_load,
    free_port,
    serve_dashboard,
)

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "docs" / "screenshots"
COORDINATOR = "kim.lee@example.com"
TODAY = datetime.now(UTC).date()
INVALID, UNSUBSCRIBED, DOWN = "+12015550177", "+12015550188", "+12015550199"
#: (id, first, last, phone, email, days since surgery, time zone, language)
PEOPLE = (
    (
        "P-1001",
        "Dana",
        "Reyes",
        "+12015550123",
        "dana.reyes@example.com",
        23,
        "America/New_York",
        "en",
    ),
    (
        "P-1002",
        "Luis",
        "Ortega",
        "+19735550142",
        "luis.ortega@example.com",
        9,
        "America/Chicago",
        "es",
    ),
    ("P-1003", "Priya", "Natarajan", None, "priya.n@example.com", 16, "America/New_York", "en"),
    ("P-1004", "Sam", "Whitford", INVALID, "sam.w@example.com", 3, "America/New_York", "en"),
    ("P-1005", "Aroha", "Ngata", UNSUBSCRIBED, None, 8, "America/Chicago", "en"),
    ("P-1006", "Mei", "Tanaka", DOWN, "mei.t@example.com", 2, "America/New_York", "en"),
    (
        "P-1007",
        "Jordan",
        "Blake",
        "+12015550164",
        "jordan.b@example.com",
        44,
        "America/Chicago",
        "en",
    ),
)
#: Replies to the pain check-ins (asked on days 4, 11, 18... at 18:00 local): (patient, day, text).
REPLIES = (
    ("P-1001", 4, "3"),
    ("P-1001", 11, "pain is 5"),
    ("P-1001", 18, "9"),
    ("P-1002", 4, "ocho"),
)
PAGES = (
    ("signin", "/app/signin"),
    ("worklist", "/app/worklist"),
    ("patients", "/app/patients"),
    ("patient", "/app/patients/P-1001"),
    ("overview", "/app/overview"),
)


def records() -> list[dict[str, Any]]:
    """The sample patients as patients-file records."""
    out = []
    for pid, first, last, phone, email, days, zone, language in PEOPLE:
        record: dict[str, Any] = {
            "id": pid,
            "first_name": first,
            "last_name": last,
            "surgery_date": TODAY - timedelta(days=days),
            "timezone": zone,
            "language": language,
        }
        if phone:
            record["phone"] = phone
        if email:
            record["email"] = email
        out.append(record)
    return out


class Answers:
    """Twilio's answers: 21211 for the invalid number; 503 for DOWN once ``down`` is set."""

    def __init__(self) -> None:
        self.down = False

    def __call__(self, _index: int, params: Mapping[str, str]) -> Fault | None:
        if params.get("To") == INVALID:
            return Fault.status(400, 21211)
        if params.get("To") == DOWN and self.down:
            return Fault.status(503)
        return None


def build(folder: Path, fake: FakeTwilio, port: int) -> str:
    """The sample clinic in ``folder``, its messages sent day by day; returns the database URL."""
    shutil.copy(REPO / "schedules.yaml", folder / "schedules.yaml")
    shutil.copytree(REPO / "templates", folder / "templates")
    (folder / "patients.yaml").write_text(
        yaml.safe_dump({"patients": records()}, sort_keys=False), encoding="utf-8"
    )
    database = f"sqlite:///{folder / 'reminders.db'}"
    env = twilio_env(fake, port)
    answers = Answers()
    fake.faults = answers
    first = TODAY - timedelta(days=max(p[5] for p in PEOPLE))
    surgery = {p[0]: TODAY - timedelta(days=p[5]) for p in PEOPLE}
    phones = {p[0]: p[3] or "" for p in PEOPLE}
    for offset in range((TODAY - first).days + 1):
        day = first + timedelta(days=offset)
        answers.down = day >= TODAY - timedelta(days=1)
        # Mid-day (the day's advice), and 19:30 in New York, 18:30 in Chicago (the 18:00
        # check-ins, inside the 09:00-20:00 send window).
        for hour in (17.0, 24.5):
            moment = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=hour)
            if moment > datetime.now(UTC):
                break
            done = runner.run(folder, database, "tick", "--now", moment.isoformat(), env=env)
            if done.code not in (0, 1):
                raise SystemExit(str(done))
            for pid, after, reply in REPLIES:
                if hour > 20 and surgery[pid] + timedelta(days=after) == day:
                    said = (moment + timedelta(minutes=5)).isoformat()
                    runner.run(
                        folder,
                        database,
                        "inbound",
                        "--from",
                        phones[pid],
                        "--body",
                        reply,
                        "--now",
                        said,
                        env=env,
                    )
    return database


def twilio_env(fake: FakeTwilio, port: int) -> dict[str, str]:
    """The environment that sends texts through ``fake``, with the unsubscribe links of the
    dashboard served on ``port`` (so each email reads on its page exactly as it went out)."""
    return {
        "REMINDERS_SECRET_KEY": SECRET,
        "REMINDERS_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "TWILIO_ACCOUNT_SID": fake.account_sid,
        "TWILIO_AUTH_TOKEN": fake.auth_token or "",
        "TWILIO_FROM_NUMBER": "+12015550100",
        "TWILIO_API_BASE_URL": fake.url,
        "TWILIO_RATE_LIMIT": "0",
    }


def shoot(url: str, out: Path) -> list[Path]:
    """Every page at desktop and phone width, full length."""
    from selenium.webdriver.common.by import By

    written = []
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        with chromium(size) as driver:
            for name, path in PAGES:
                if name == "worklist":  # signed in from here on
                    driver.get(f"{url}/app/signin")
                    driver.find_element(By.ID, "email").send_keys(COORDINATOR)
                    driver.find_element(By.ID, "password").send_keys(PASSWORD)
                    button = driver.find_element(By.CSS_SELECTOR, "form button[type=submit]")
                    click_and_load(driver, button)
                driver.get(f"{url}{path}")
                for details in driver.find_elements(By.CSS_SELECTOR, "ol.timeline details")[:2]:
                    details.find_element(By.TAG_NAME, "summary").click()
                height = driver.execute_script("return document.documentElement.scrollHeight")
                metrics = {
                    "width": size[0],
                    "height": max(size[1], min(int(height), 5000)),
                    "deviceScaleFactor": 1,
                    "mobile": label == "phone",
                }
                driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
                target = out / f"{name}-{label}.png"
                driver.save_screenshot(str(target))
                driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
                written.append(target)
    return written


def main() -> None:
    """Build the sample clinic, serve it, and write the screenshots."""
    reason = browser_missing()
    if reason:
        raise SystemExit(f"screenshots need Chromium: {reason}")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="screens-") as tmp, FakeTwilio() as fake:
        fake.unsubscribe(UNSUBSCRIBED)
        folder = Path(tmp)
        port = free_port()
        database = build(folder, fake, port)
        add_user(folder, database, COORDINATOR, "coordinator")
        with serve_dashboard(folder, database, twilio_env(fake, port), port) as served:
            for path in shoot(served.url, OUT):
                print(path.relative_to(REPO))
    sys.exit(0)


if __name__ == "__main__":
    main()
