"""Responsible release of red-team data: PII scrubbing, pseudonymous red teamers, a datasheet, a checked bundle.

Red-team data is a catalogue of attacks written by people: before it leaves the
database it is scrubbed of personal information, its authors become per-release
integers, and it travels with a datasheet, a content warning and checksums.
``sparring release SOURCE OUT/`` does all of it (``release.bundle.build_bundle``).
"""
