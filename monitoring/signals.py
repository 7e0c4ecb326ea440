"""What monitoring tells the apps above it, without knowing them."""

from django.dispatch import Signal

# Sent with `count` (live upload servers, at least 1) whenever monitoring counts them: when a
# server reports for the first time or after a silence, every few seconds while reports arrive,
# each minute from the worker, and when a server is revoked. The partners app rewrites the
# shared table's `*` row when the count moved (partners.publisher.publish_live_server_count).
live_servers_counted = Signal()
