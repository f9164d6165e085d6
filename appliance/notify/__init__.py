"""Notifications: a durable, retrying delivery queue in Redis and its channels.

`queue` keeps deliveries (one per notification, channel and recipient) with retries, backoff,
digests and caps; `routing` turns notification events into deliveries; `email`, `webhooks` and
`browser` deliver them; `subscriptions` and `links` handle double opt-in and unsubscribing.
"""
