"""The inventory: what revocd knows of each issued certificate beyond its status
(facts.py), the questions asked of it (query.py), expiry watching (expiry.py, watch.py),
the key-compromise cascade (cascade.py) and revocation campaigns (campaign.py)."""
