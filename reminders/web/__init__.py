"""The parts of the HTTP side; :func:`reminders.http.create_app` puts them together.

``context`` (what handlers need from the service), ``limits`` (body cap), ``webhook``
(what a Twilio webhook must be), ``twilio`` (the two webhooks), ``pages`` (unsubscribe).
"""
