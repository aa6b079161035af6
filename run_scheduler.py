"""``python run_scheduler.py`` is ``reminders run`` (SPEC section 5)."""

import sys

from reminders.cli import main

if __name__ == "__main__":
    sys.argv = [sys.argv[0], *[a for a in sys.argv[1:] if a != "run"], "run"]
    main()
