"""S3 through boto3: every S3 API call of ws-artifacts is made in this package.

:mod:`.backend` is the route's backend (the :mod:`ws_artifacts.storage.base` interface).
"""
