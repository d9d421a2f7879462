"""What runs underneath app.py, one concern per module; the layout table in docs/development.md says which owns what."""
