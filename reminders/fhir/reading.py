"""A FHIR R4 Bundle of Patient + Procedure as patient records (``--patients bundle.json``).

The Bundle is read within the patients file's bounds (:mod:`reminders.jsonio`), then
each entry is validated with the ``fhir.resources`` R4B models (R4B is R4 with errata:
the same Patient and Procedure). Each Patient with the one Procedure whose ``subject``
names it becomes one :class:`~reminders.records.RawRecord` with the patients file's fields:

==================  ==============================================================
``id``              ``Patient.identifier`` of schedules.yaml's ``fhir.patient_identifier``
                    system (``Patient.id`` when none is configured)
``first_name``      ``Patient.name`` (official, else usual, else the first): ``given[0]``
``last_name``       its ``family``
``phone``           ``Patient.telecom``: ``sms``, else a ``mobile`` phone, else a phone
``email``           ``Patient.telecom`` of system ``email`` (``old`` ones left out)
``language``        ``Patient.communication`` (the preferred one): ``es-MX`` reads ``es``
``timezone``        the ``fhir.timezone_extension`` on Patient (``valueCode``), else the clinic's
``surgery_date``    ``Procedure.performedDateTime``, else ``performedPeriod.start``: the date
                    as written (its local date)
``protocol``        ``Procedure.code.coding`` through ``fhir.procedures``
``status``          ``withdrawn`` for an inactive or deceased Patient or a Procedure
                    ``not-done`` or ``entered-in-error``; ``paused`` for ``on-hold``
``attributes``      ``fhir.attribute_extension`` on Procedure (``name`` and ``value``)
==================  ==============================================================

Every problem names the entry and the element (``entry[0] Patient/pat-1 id=P-1001:
telecom[0].value: ...``). An entry that is no valid resource rejects its patient with one
problem, and the entries that refer to it add none. Other resource types (an Encounter,
the CarePlans this service exports) are left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.procedure import Procedure
from pydantic import ValidationError

from reminders.errors import PatientFileError
from reminders.fields import shorten
from reminders.jsonio import read_json
from reminders.lifecycle import EnrollmentStatus
from reminders.models import FhirMapping, Schedules
from reminders.records import Fault, RawRecord

#: Procedure statuses (FHIR event-status) and the enrollment status each gives.
PROCEDURE_STATUSES: Final[Mapping[str, EnrollmentStatus]] = {
    "preparation": EnrollmentStatus.ACTIVE,
    "in-progress": EnrollmentStatus.ACTIVE,
    "completed": EnrollmentStatus.ACTIVE,
    "stopped": EnrollmentStatus.ACTIVE,
    "unknown": EnrollmentStatus.ACTIVE,
    "on-hold": EnrollmentStatus.PAUSED,
    "not-done": EnrollmentStatus.WITHDRAWN,
    "entered-in-error": EnrollmentStatus.WITHDRAWN,
}
#: Patient elements that withdraw the patient (no message to a deceased patient), and when.
WITHDRAWING: Final[Mapping[str, Callable[[Any], bool]]] = {
    "active": lambda value: value is False,
    "deceasedBoolean": lambda value: value is True,
    "deceasedDateTime": lambda value: value is not None,
}
#: The resource types read; other valid ones are left alone.
READ: Final = ("Patient", "Procedure")


def element(loc: Sequence[str | int]) -> str:
    """A pydantic error location as a FHIR element path: ``telecom[0].value``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path


def model_fault(exc: ValidationError) -> Fault:
    """The first error of a resource that failed its model, as one fault of the entry."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = element(first["loc"])
    if where == "resource_type":
        where = "resourceType"
    message = str(first["msg"]).split("\n")[0]
    value = first.get("input")
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        message += f", got {shorten(repr(value))}"
    more = len(errors) - 1
    if more:
        message += f" (and {more} more error{'s' if more > 1 else ''} in this entry)"
    return Fault("", message, element=where)


@dataclass(eq=False)  # compared by identity: a Bundle's entries may be equal
class _Entry:
    """One entry of the Bundle, as far as it could be read."""

    index: int
    place: str
    raw: Mapping[str, Any]
    kind: str
    model: Any = None
    fault: Fault | None = None
    refers: list[_Entry] = field(default_factory=list)

    @property
    def resource(self) -> Mapping[str, Any]:
        found = self.raw.get("resource")
        return found if isinstance(found, Mapping) else {}

    def names(self) -> list[str]:
        """How a reference may name this entry: its ``fullUrl`` and ``Patient/<id>``."""
        names = []
        if isinstance(self.raw.get("fullUrl"), str):
            names.append(self.raw["fullUrl"])
        rid = self.resource.get("id")
        if isinstance(rid, str):
            names.append(f"Patient/{rid}")
        return names

    def subject(self) -> str | None:
        """The reference in ``subject``, as written."""
        subject = self.resource.get("subject")
        ref = subject.get("reference") if isinstance(subject, Mapping) else None
        return ref if isinstance(ref, str) else None


def _entry(index: int, raw: object) -> _Entry:
    position = f"entry[{index}]"
    if not isinstance(raw, Mapping) or not isinstance(raw.get("resource"), Mapping):
        return _Entry(index, position, {}, "", fault=Fault("", "expected an entry with a resource"))
    resource = raw["resource"]
    kind = resource.get("resourceType")
    rid = resource.get("id")
    place = f"{position} {shorten(str(kind))}" if kind else position
    if isinstance(rid, str):
        place += f"/{shorten(rid)}"
    entry = _Entry(index, place, raw, kind if isinstance(kind, str) else "")
    if not isinstance(kind, str) or not kind:
        entry.fault = Fault("", "is required", element="resourceType")
        return entry
    try:
        get_fhir_model_class(kind)
    except (ValueError, KeyError):
        entry.fault = Fault(
            "", f"{shorten(kind)!r} is not a FHIR R4 resource type", element="resourceType"
        )
        return entry
    if kind in READ:
        try:
            entry.model = (Patient if kind == "Patient" else Procedure).model_validate(resource)
        except ValidationError as exc:
            entry.fault = model_fault(exc)
    return entry


def read_bundle(path: Path, schedules: Schedules, max_bytes: int) -> Iterator[RawRecord]:
    """The patient records of the Bundle at ``path`` (at most ``max_bytes``); raises
    PatientFileError naming the file when it is no readable Bundle."""
    file = str(path)
    doc = read_json(path, PatientFileError, "use --patients PATH or REMINDERS_PATIENTS", max_bytes)
    if not isinstance(doc, Mapping) or doc.get("resourceType") != "Bundle":
        kind = doc.get("resourceType") if isinstance(doc, Mapping) else type(doc).__name__
        raise PatientFileError(
            file, f"expected a FHIR Bundle, got {shorten(repr(kind))}", field="resourceType"
        )
    entries = doc.get("entry")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise PatientFileError(file, "expected a list of entries", field="entry")
    _check_bundle(file, doc)
    read = [_entry(i, raw) for i, raw in enumerate(entries)]
    patients = [e for e in read if e.kind == "Patient" or (e.fault and e.subject() is None)]
    chosen = {id(e) for e in patients}
    by_key: dict[str, _Entry] = {}
    for patient in patients:
        for key in patient.names():
            by_key.setdefault(key, patient)
    strays: list[_Entry] = []
    for entry in read:
        if id(entry) in chosen or (entry.kind not in READ and entry.fault is None):
            continue
        ref = entry.subject()
        owner = by_key.get(ref) if ref else None
        if owner is None:
            missing = f"{shorten(ref)!r} names no Patient in this Bundle" if ref else "is required"
            entry.fault = entry.fault or Fault("", missing, element="subject.reference")
            strays.append(entry)
        else:
            owner.refers.append(entry)
    records = [(p.index, _record(p, schedules.fhir, schedules.languages)) for p in patients]
    records += [(s.index, RawRecord(s.place, {}, faults=(s.fault,))) for s in strays if s.fault]
    for _, record in sorted(records, key=lambda pair: pair[0]):
        yield record


def _check_bundle(file: str, doc: Mapping[str, Any]) -> None:
    """The Bundle itself (without its entries) must be valid."""
    try:
        Bundle.model_validate({k: v for k, v in doc.items() if k != "entry"})
    except ValidationError as exc:
        fault = model_fault(exc)
        raise PatientFileError(file, fault.message, field=fault.element) from None


def _raw_id(resource: Mapping[str, Any], mapping: FhirMapping) -> str | None:
    """The patient id of a resource even when it failed its model, so that a bad entry
    leaves its patient's stored enrollment alone instead of withdrawing it."""
    if mapping.patient_identifier is None:
        rid = resource.get("id")
        return rid if isinstance(rid, str) else None
    identifiers = resource.get("identifier")
    for item in identifiers if isinstance(identifiers, list) else []:
        if isinstance(item, Mapping) and item.get("system") == mapping.patient_identifier:
            value = item.get("value")
            return value if isinstance(value, str) else None
    return None


def _record(patient: _Entry, mapping: FhirMapping, languages: Sequence[str]) -> RawRecord:
    """One patient's record: the Patient entry and the entries whose subject it is."""
    faults = [patient.fault] if patient.fault else []
    faults += [
        Fault("", e.fault.message, e.place, e.fault.element) for e in patient.refers if e.fault
    ]
    procedures = [e for e in patient.refers if e.kind == "Procedure" and e.fault is None]
    if not faults and not procedures:
        faults.append(
            Fault("", "no Procedure in this Bundle has this patient as its subject", element="id")
        )
    if len(procedures) > 1:
        first = procedures[0].place
        faults.append(
            Fault(
                "",
                f"a second Procedure for this patient (the first is {first}): the export "
                "must hold one Procedure per patient, the one the reminders follow",
                procedures[1].place,
                "subject",
            )
        )
    if faults:
        pid = _raw_id(patient.resource, mapping)
        return RawRecord(patient.place, {"id": pid} if pid else {}, faults=tuple(faults))
    reader = _Reader(patient.place, procedures[0].place, mapping)
    reader.patient(patient.model, languages)
    reader.procedure(procedures[0].model)
    return RawRecord(patient.place, reader.fields, reader.sources, tuple(reader.faults))


class _Reader:
    """Copies one Patient and its Procedure into the patients file's fields."""

    def __init__(self, patient: str, procedure: str, mapping: FhirMapping) -> None:
        self.places = {"Patient": patient, "Procedure": procedure}
        self.mapping = mapping
        self.fields: dict[str, Any] = {}
        self.sources: dict[str, tuple[str, str]] = {}
        self.faults: list[Fault] = []

    def put(self, name: str, value: Any, resource: str, where: str) -> None:
        self.fields[name] = value
        self.sources[name] = (self.places[resource], where)

    def fault(self, name: str, message: str, resource: str, where: str) -> None:
        self.sources[name] = (self.places[resource], where)
        self.faults.append(Fault(name, message))

    def patient(self, patient: Patient, languages: Sequence[str]) -> None:
        system = self.mapping.patient_identifier
        if system is None:
            self.put("id", patient.id, "Patient", "id")
        else:
            found = [
                (i, ident)
                for i, ident in enumerate(patient.identifier or [])
                if ident.system == system
            ]
            if found:
                self.put("id", found[0][1].value, "Patient", f"identifier[{found[0][0]}].value")
            else:
                self.fault("id", f"no identifier of system {system}", "Patient", "identifier")
        names = list(enumerate(patient.name or []))
        names.sort(key=lambda pair: {"official": 0, "usual": 1}.get(pair[1].use or "", 2))
        if names:
            i, name = names[0]
            if name.given:
                self.put("first_name", name.given[0], "Patient", f"name[{i}].given[0]")
            else:
                self.sources["first_name"] = (self.places["Patient"], f"name[{i}].given")
            if name.family:
                self.put("last_name", name.family, "Patient", f"name[{i}].family")
        else:
            self.sources["first_name"] = (self.places["Patient"], "name")
        self._telecom(patient)
        self._language(patient, languages)
        for i, extension in enumerate(patient.extension or []):
            if extension.url == self.mapping.timezone_extension:
                where = f"extension[{i}].valueCode"
                self.put("timezone", extension.valueCode or "", "Patient", where)
                break
        for where, leaving in WITHDRAWING.items():
            if leaving(getattr(patient, where)):
                self.put("status", EnrollmentStatus.WITHDRAWN, "Patient", where)
                break

    def _telecom(self, patient: Patient) -> None:
        phones: list[tuple[int, int]] = []
        for i, point in enumerate(patient.telecom or []):
            if point.use == "old" or point.value is None:
                continue
            if point.system == "email" and "email" not in self.fields:
                self.put("email", point.value, "Patient", f"telecom[{i}].value")
            elif point.system in ("sms", "phone"):
                rank = 0 if point.system == "sms" else 1 if point.use == "mobile" else 2
                phones.append((rank, i))
        if phones:
            _, i = min(phones)
            value = (patient.telecom or [])[i].value
            self.put("phone", value, "Patient", f"telecom[{i}].value")

    def _language(self, patient: Patient, languages: Sequence[str]) -> None:
        spoken = list(enumerate(patient.communication or []))
        spoken.sort(key=lambda pair: 0 if pair[1].preferred else 1)
        for i, communication in spoken:
            concept = communication.language
            codes = [c.code for c in concept.coding or [] if c.code]
            if not codes:
                continue
            code = codes[0]
            primary = code.split("-")[0].lower()
            chosen = code if code in languages else primary if primary in languages else code
            self.put("language", chosen, "Patient", f"communication[{i}].language")
            return

    def procedure(self, procedure: Procedure) -> None:
        self._anchor(procedure)
        written = (procedure.code.coding if procedure.code else None) or []
        codings = [(c.system or "", c.code or "") for c in written]
        table = self.mapping.procedures
        protocols = {table[coding] for coding in codings if coding in table}
        if len(protocols) == 1:
            self.put("protocol", protocols.pop(), "Procedure", "code.coding")
        elif protocols:
            self.fault(
                "protocol",
                f"its codings map to more than one protocol ({', '.join(sorted(protocols))})",
                "Procedure",
                "code.coding",
            )
        else:
            seen = ", ".join(shorten(f"{s}|{c}", 200) for s, c in codings[:3]) or "none"
            known = ", ".join(f"{s}|{c}" for s, c in list(table)[:5])
            self.fault(
                "protocol",
                f"unknown procedure code ({seen}): not in schedules.yaml's fhir.procedures "
                f"(known: {known or 'none: add the fhir: block'})",
                "Procedure",
                "code.coding",
            )
        status = PROCEDURE_STATUSES.get(procedure.status or "")
        if status is None:
            self.fault(
                "status",
                f"unknown status {shorten(repr(procedure.status))} "
                f"(known: {', '.join(PROCEDURE_STATUSES)})",
                "Procedure",
                "status",
            )
        elif status != EnrollmentStatus.ACTIVE and "status" not in self.fields:
            self.put("status", status, "Procedure", "status")
        self._attributes(procedure)

    def _anchor(self, procedure: Procedure) -> None:
        where, value = "performedDateTime", procedure.performedDateTime
        if value is None and procedure.performedPeriod is not None:
            where, value = "performedPeriod.start", procedure.performedPeriod.start
        if value is None:
            self.fault(
                "surgery_date",
                "is required: performedDateTime or performedPeriod.start (the surgery date)",
                "Procedure",
                "performed[x]",
            )
        elif isinstance(value, datetime):
            self.put("surgery_date", value.date().isoformat(), "Procedure", where)
        elif isinstance(value, date):
            self.put("surgery_date", value.isoformat(), "Procedure", where)
        else:
            self.fault(
                "surgery_date",
                f"needs a whole date (YYYY-MM-DD), got {shorten(repr(value))}",
                "Procedure",
                where,
            )

    def _attributes(self, procedure: Procedure) -> None:
        url = self.mapping.attribute_extension
        if url is None:
            return
        attributes: dict[str, str] = {}
        for i, extension in enumerate(procedure.extension or []):
            if extension.url != url:
                continue
            parts = {
                part.url: part.valueString or part.valueCode for part in extension.extension or []
            }
            name, value = parts.get("name"), parts.get("value")
            if not name or value is None:
                self.fault(
                    "attributes",
                    "expected a 'name' and a 'value' extension (valueString)",
                    "Procedure",
                    f"extension[{i}]",
                )
                return
            attributes[name] = value
            self.sources[f"attributes.{shorten(name)}"] = (
                self.places["Procedure"],
                f"extension[{i}]",
            )
        if attributes:
            self.fields["attributes"] = attributes
