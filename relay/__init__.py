"""What runs underneath app.py, one concern per module; the layout table in the README says which owns what."""
