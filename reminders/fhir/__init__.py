"""FHIR R4 in and out (SPEC section 13).

==============  ================================================================
``reading``     a Bundle of Patient + Procedure as patient records (``--patients``)
``export``      enrollments, reminders and sent messages as a Bundle (``export fhir``)
==============  ================================================================

Resources are validated with the ``fhir.resources`` R4B models (R4 with its errata).
"""
