"""The conversation script as flows (docs/ARCHITECTURE.md): `dispatcher.Script` picks the flow for each turn; one
module per flow; typed, versioned state in `state.py`; tuning numbers in data/seed/script.yml (`tuning.py`).

Only the hand-back API is imported here, so that a channel can use it without loading the script."""
from bot.flows.handback import HandBack, after_handoff

__all__ = ["HandBack", "after_handoff"]
