"""The sandbox OpenWatch: a miniature, faithful OpenWatch installation built offline.

It is the test bed every end-to-end test of the suite runs against: images built from
Debian packages (:mod:`sandbox.images`), a git origin with tagged releases and fault
releases (:mod:`sandbox.releases`), and installations created from it
(:mod:`sandbox.installation`).
"""
