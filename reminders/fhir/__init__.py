"""FHIR R4 appointments in: `reminders fhir sync` and beat's sync when FHIR_BASE_URL is set.

client.py talks HTTP (paging, a bearer token or SMART backend services), mapping.py turns FHIR
resources into the intake's records (pure), sync.py runs a sync and keeps its state in the database.
"""
