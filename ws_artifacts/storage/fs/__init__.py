"""Every other store through fsspec (local directories, memory, s3fs, gcsfs, adlfs...): every
fsspec call of ws-artifacts is made in this package.

:mod:`.backend` is the route's backend (the :mod:`ws_artifacts.storage.base` interface), over
:mod:`.keys` (lifecycle work by key) and :mod:`.store` (the file system, paths and errors);
:mod:`.s3fs_options` gives s3fs a route's S3 settings, :mod:`.local_files` writes local files.
"""
