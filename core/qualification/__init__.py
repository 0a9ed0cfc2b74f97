"""Qualification sums: each member's daily sums of credits (points, spend, nights, litres...) that tiers, segments and
caps read over windows. Prometheus metrics are elsewhere (``core.ops``)."""
