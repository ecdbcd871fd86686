"""HL7 v2 scheduling messages in: SIU^S12/S13/S14/S15/S26 over MLLP (`reminders hl7 listen`).

mapping.py reads a parsed message into what it asks for (book, reschedule, modify, cancel, no-show)
without I/O; apply.py applies that through the same upsert as the CSV import and the JSON API;
ack.py builds the ACK; listener.py is the asyncio MLLP server.
"""
