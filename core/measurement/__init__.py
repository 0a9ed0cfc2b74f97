"""Measuring loyalty: AHP models and indices, member metrics, RFM, loyalty types, churn and value, liability."""
