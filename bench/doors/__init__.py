"""The guarded doors: one each for files in, processes out and strings out.

Enters: paths a user or a tool hands the suite, commands to start, text from servers and users.
Leaves: checked bytes and parsed data (``files``), supervised children (``children``), strings with
keys masked and control characters escaped (``redact``), JSON any strict reader accepts
(``strict_json``), and signal handlers swapped for a block (``signals``). Imports nothing of the
pipeline above it.
"""
