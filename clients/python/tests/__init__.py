"""The client's tests, standard library ``unittest`` only. From this folder (clients/python)::

    python3 -m unittest            # every test; -v names each one, -k SigningTest picks some

or from the repository's root: ``python3 -m unittest discover -s clients/python``. Both put this
folder first on the import path, so the package is tested as it is here, without installing it.

Most tests need Python alone (in-process fake servers). ``test_servers`` starts the repository's
mock server and Express example, which need Node.js 22.12+, ``npm ci`` and, for the Express example,
``node scripts/prisma-generate.mjs``; without them its classes are skipped with the reason and the
command that fixes it (a failure instead when ``PIPELINE_STATUS_REQUIRE_ALL`` is set, as in CI).
``npm test`` runs the same command (test/clients/python-client.test.ts).
"""
