"""Delivery channels: one-method objects that turn a :class:`Message` into a :class:`Receipt`.

Each channel classifies its provider's failures into the
:class:`~reminders.errors.DeliveryError` subclasses, so the dispatcher never reads a
provider's error codes.
"""

from reminders.channels.base import Channel, Message, Receipt

__all__ = ["Channel", "Message", "Receipt"]
