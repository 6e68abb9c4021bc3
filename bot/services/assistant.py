"""The conversation script now lives in bot/flows/ (one module per flow, docs/ARCHITECTURE.md). This name stays for
the code and tests that import it: `Assistant(tools).handle(turn, state)` is `bot.flows.dispatcher.Script`."""
from bot.flows.dispatcher import Script as Assistant
from bot.flows.tools import Tools

__all__ = ["Assistant", "Tools"]
