"""The sbom engine: reads SBOM files (CycloneDX, SPDX 2 JSON) and matches their components
against OSV advisories."""
