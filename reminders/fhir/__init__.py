"""FHIR R4 in and out (SPEC section 13).

==============  ================================================================
``reading``     a Bundle of Patient + Procedure as patient records (``--patients``)
``export``      enrollments, reminders and sent messages as a Bundle (``export fhir``)
``answers``     check-in answers and alerts: Questionnaire(Response), Flag
``ids``         resource ids (uuid5 of database keys) and instants
==============  ================================================================

Resources are validated with the ``fhir.resources`` R4B models (R4 with its errata).
"""
