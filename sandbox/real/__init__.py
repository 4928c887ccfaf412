"""The real OpenWatch (compose era) as a test bed: built offline from the bundle in ``shared/openwatch-real``.

Nothing of OpenWatch's code lives here: an installation is a clone of a test origin made from the bundle,
and only what cannot be had offline is changed, by a compose override and build-time patches (README).
"""
