"""Scaffolding the tests share: loopback HTTP servers, the demo servers' checks, store seeding."""
