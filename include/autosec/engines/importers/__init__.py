"""Parsers for reports that other scanners already produce (SARIF, Trivy, Grype, ...)."""
