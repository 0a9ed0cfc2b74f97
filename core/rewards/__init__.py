"""Rewards: the catalogue, redemptions with unique voucher codes, their use, cancellation and expiry."""
