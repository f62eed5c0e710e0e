"""Vulnerability intelligence, pure: OSV advisories (``osv``), matching package URLs against
them (``matching``), the CISA KEV catalog (``kev``), EPSS scores (``epss``), feed freshness
(``feeds``) and where the feeds come from (``config``). Loading them into the store is
``autosec.store.intel``; keeping them current is ``autosec.stages.intel``."""
