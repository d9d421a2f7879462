"""The relay's moving parts, split out of app.py (which owns them) so each reads on its own.

run.py (one run: bind, quickstart, join, serve, stop), core.py (what the routes
and the script runner share), room.py (the CallClient), audio.py (recognise,
decode and resample audio), daily_logs.py (Daily's and libmpg123's log lines
kept off stderr), sender.py (ordered, confirmed delivery),
utterances.py (open utterances' rates), events.py (/events), microphone.py
(microphone echo), recorder.py (RELAY_RECORD_FILE), script.py (scripted demos),
dry_face.py (the dry run's stand-in face), markup.py (what Tavus's voice
reads as markup, and its emotions), errors.py (what a request can end in).
app.py keeps the Flask app, its routes and the command line.
"""
