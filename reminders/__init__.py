"""Recovery reminders: post-operative protocol messages, by SMS and email, exactly once.

Data flows one way::

    config -> plan -> outbox -> claim -> render -> channel -> receipt -> status

``config`` and ``patients`` parse files into validated values, ``planning`` turns an
enrollment into reminders (pure), ``store`` keeps the outbox, ``dispatch`` claims due
reminders and hands rendered messages to a ``channels`` implementation.
"""

__version__ = "0.1.0"
