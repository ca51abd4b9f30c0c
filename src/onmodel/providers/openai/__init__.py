"""The ``openai-images`` and ``openai-responses`` providers, and the client and helpers they share.

Nothing is imported here: the registry loads ``images`` or ``responses`` by entry point only when
a provider is first asked for, so importing this package never pays for the openai SDK.
"""
