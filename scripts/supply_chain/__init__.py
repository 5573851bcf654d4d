"""The supply chain: hash-locked requirements (lock.py), their vulnerability audit (audit.py)."""
