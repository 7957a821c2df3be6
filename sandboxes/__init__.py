"""Local stand-ins for the two vendors esimsdata talks to: eSIM Go and the Telegram Bot API.

Each sandbox is a real HTTP server on 127.0.0.1 that answers like the vendor does (shapes taken from
../shared/reference/), records what it was asked, and can be told to fail. Tests, demo mode and
`scripts/test-stars-webhook` use them; nothing here is imported by the production code paths.
"""
