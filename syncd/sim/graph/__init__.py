"""The Microsoft Graph simulator (directory, delta, subscriptions, notifications, auth, faults)."""
