"""The nmap engine (engine.py) and its pure XML parser (parser.py)."""
