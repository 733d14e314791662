"""The workflows a command runs, each a library call: run, check, ab, capacity, noise, nightly.

Enters: an options record (``RunOptions``, ``NightlyOptions``, ...) and an observer for progress.
Leaves: a result record (``RunResult``, ``NightlyOutcome``, ...) and the files the store wrote.
The only package that chains the steps below it; the CLI parses for it and prints what it returns.
"""
