"""The TLS engine (engine.py, running sslyze) and its pure JSON parser (parser.py)."""
