"""The database tables, one module per part of the clinic's picture."""
from reminders.models.base import Base, UTCDateTime, utcnow
from reminders.models.patients import Course, Patient
from reminders.models.appointments import Appointment
from reminders.models.replies import CheckIn, CheckInLink, Escalation, InboundMessage
from reminders.models.outbox import OutboxMessage
from reminders.models.imports import ImportJob, ImportJobRow
from reminders.models.measures import Questionnaire
from reminders.models.provider_health import ProviderHealth
from reminders.models.fhir import FhirSyncState
from reminders.models.saved_replies import SavedReply
from reminders.models.locations import Location, staff_user_locations
from reminders.models.staff import ApiToken, AuditEntry, RecoveryCode, StaffSession, StaffUser, TemplateVersion

__all__ = [
    "ApiToken", "Appointment", "AuditEntry", "Base", "CheckIn", "CheckInLink", "Course", "Escalation", "ImportJob", "ImportJobRow",
    "InboundMessage", "Location", "OutboxMessage", "Patient", "ProviderHealth", "Questionnaire", "RecoveryCode", "SavedReply", "StaffSession", "StaffUser", "TemplateVersion",
    "UTCDateTime", "staff_user_locations", "utcnow",
]
