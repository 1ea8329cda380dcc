"""Microsoft Graph access: app-only tokens (`auth`), a retrying client (`client`), throttling
budgets (`budget`), national clouds (`clouds`), delta rounds (`delta`), the URL catalogue
(`endpoints`), errors (`errors`), Intune report exports (`reports`) and subscriptions.

Import from the modules themselves: this package imports nothing of syncd outside itself, and
importing it alone loads no HTTP or MSAL code.
"""
