"""The http engine (engine.py), its probe subprocess (probe.py) and pure parser (parser.py)."""
