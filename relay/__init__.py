"""The relay's moving parts, split out of app.py (which owns them) so each reads on its own.

room.py (the CallClient), sender.py (ordered, confirmed delivery), events.py
(/events), microphone.py (microphone echo), recorder.py (RELAY_RECORD_FILE),
errors.py (what a request can end in). app.py keeps the Flask app, its routes
and the command line.
"""
