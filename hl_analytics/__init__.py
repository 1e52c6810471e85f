"""hl-analytics: Hyperliquid wallet analytics for organisations (command line and settings)."""
