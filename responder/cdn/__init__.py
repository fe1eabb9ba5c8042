"""revocd and the CDNs in front of it: the cache tags on what the data plane serves
(tags.py), the purge requests each provider takes (providers.py), and the purger that
sends them from the store's durable change streams (purger.py)."""
