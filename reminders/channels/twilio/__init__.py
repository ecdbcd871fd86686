"""Twilio, in one place: the client that sends (client), its error codes and statuses (codes), and
the webhooks it calls us on: the signature check and its forms read into the service's own types
(webhooks). Nothing outside this package knows Twilio's codes or field names.

The modules are imported one by one: importing the package does not import the twilio library.
"""
