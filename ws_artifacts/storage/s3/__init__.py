"""S3 through boto3: every S3 API call of ws-artifacts is made in this package.

:mod:`.backend` is the route's backend (the :mod:`ws_artifacts.storage.base` interface), built
on :mod:`.bucket` (client, bucket owner, the one botocore translation) with its operations
grouped by module: :mod:`.multipart`, :mod:`.presign`, :mod:`.keys` (lifecycle work by key,
copies within the bucket in :mod:`.key_copy`), :mod:`.listing` (every listing call),
:mod:`.transfer` (parts and ranged downloads) and :mod:`.upload_args` (every upload's arguments).
"""
