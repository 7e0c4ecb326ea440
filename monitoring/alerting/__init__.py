"""Alerts: rules evaluated every minute, their state, silences and email notifications."""
