"""Metric sources, samples, alert rules and notifications arrive here with live metrics."""
