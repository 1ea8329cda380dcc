"""Microsoft Graph access: app-only tokens (`auth`), a retrying client (`client`), throttling
budgets (`budget`), national clouds (`clouds`), delta rounds (`delta`), the URL catalogue
(`endpoints`), errors (`errors`), Intune report exports (`reports`) and subscriptions.

Import from the modules themselves: importing the package alone loads no HTTP or MSAL code. Of
syncd outside itself it imports only ``syncd.retry`` (which imports nothing of syncd).
"""
