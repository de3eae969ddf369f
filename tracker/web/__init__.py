"""The web side: tracking pages, unsubscribe, engagement, webhooks and the operator dashboard."""
