"""The ``ws+<db>://`` workspace provider: MLflow's own SQL provider, with artifacts that follow.

Turned on with ``mlflow server --enable-workspaces --workspace-store-uri ws+sqlite:///mlflow.db``
(``ws+`` before the backend store URI; ``ws-artifacts server`` does it by default). MLflow finds
it through the ``mlflow.workspace_provider`` entry points (one per database scheme), in every
version from 3.10 on. Everything is MLflow's SQL provider, except:

* **delete_workspace** (RESTRICT, CASCADE, SET_DEFAULT): refuses up front what MLflow would
  refuse (nothing moves then), moves the workspace's place into quarantine, deletes the rows,
  then sweeps anything written meanwhile into the same quarantine entry. If the row delete
  fails, the artifacts are moved back; a crash midway leaves a ``moving`` entry that the next
  attempt finishes. SET_DEFAULT moves experiments to the default workspace, but their stored
  locations still name ``workspaces/<ws>/...``, which the default workspace may not read: their
  artifacts are quarantined like any other (see docs/lifecycle.md).
* **create_workspace**: objects already in the new workspace's place (left by a deletion while
  the provider was off) are quarantined first, with a warning, so the new workspace starts
  empty.

A workspace's *places* are its route's current place and every previous one (reads fall back to
those): each is quarantined beside itself, with one time stamp for the whole deletion.

A workspace's own ``default_artifact_root`` (docs/storage-locations.md) is checked here against
the approved storage locations and every other workspace's places (:func:`locations.check_root`)
on create and update; an update first records the old root as a previous place (ws-artifacts'
own table in the same database), so reads fall back and ``migrate`` finds it. Experiments keep
MLflow's proxied layout (``resolve_artifact_root`` answers the server's default root), so clients
need no credentials; ws-artifacts routes the bytes to the root.

The artifact locations come from the server's environment: ``WS_ARTIFACTS_CONFIG`` and the
destination ``mlflow server`` hands its workers (:func:`destinations.destinations_from_env`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterable
from typing import Any

from ws_artifacts._mlflow import exceptions, workspace_store
from ws_artifacts.core.config import Config
from ws_artifacts.core.destinations import destinations_from_env
from ws_artifacts.core.errors import (
    ConfigError,
    StorageLocationError,
    UnroutedWorkspaceError,
    WsArtifactsError,
)
from ws_artifacts.core.locations import check_root, routes_by_root
from ws_artifacts.core.paths import DEFAULT_WORKSPACE, is_valid_workspace_name
from ws_artifacts.core.routing import Router
from ws_artifacts.core.targets import Place, WorkspaceRoot
from ws_artifacts.lifecycle import roots
from ws_artifacts.lifecycle.quarantine import (
    Entry,
    places_of,
    quarantine_place,
    restore,
)
from ws_artifacts.serving import refusals
from ws_artifacts.serving.live_config import config_from_env
from ws_artifacts.storage.registry import backend_for

__all__ = ["PREFIX", "create_provider", "inner_uri"]

_logger = logging.getLogger(__name__)

#: What comes before the database URI in ``--workspace-store-uri``.
PREFIX = "ws+"


def inner_uri(workspace_uri: str) -> str:
    """The database URI inside ``ws+<db uri>``.

    Raises:
        ConfigError: The URI does not start with ``ws+``.
    """
    if not workspace_uri.startswith(PREFIX) or len(workspace_uri) <= len(PREFIX):
        raise ConfigError(
            f"Workspace store URI {workspace_uri!r} is not a ws-artifacts provider URI; use "
            "ws+ before the database URI, e.g. ws+sqlite:///mlflow.db."
        )
    return workspace_uri[len(PREFIX) :]


def create_provider(workspace_uri: str) -> Any:
    """The entry point MLflow calls (``builder(workspace_uri=...)``)."""
    cls = _provider_class()
    return cls(workspace_uri)


_CLASS: type | None = None


def _provider_class() -> type:
    global _CLASS
    if _CLASS is None:
        base = workspace_store.workspace_store_base()
        _CLASS = type("QuarantiningWorkspaceStore", (_Provider, base), {})
    return _CLASS


def _refused(err: Any, workspace: str) -> None:
    """Raise MLflow's refusal of a deletion (INVALID_STATE, which MLflow answers with HTTP 500
    and its client retries for minutes) as one the client does not retry; else return."""
    refusal = refusals.as_refusal(err, "delete_workspace", workspace)
    if refusal is not err:
        raise refusal from err


class _Provider:
    """Delegates to MLflow's SQL provider; see the module docstring for what differs."""

    def __init__(self, workspace_uri: str) -> None:
        self.inner = workspace_store.sql_workspace_store(inner_uri(workspace_uri))
        workspace_store.ensure_previous_roots_table(self.inner)

    def __getattr__(self, name: str) -> Any:  # methods MLflow adds in later versions
        return getattr(self.inner, name)

    # -- plain delegation ---------------------------------------------------------------
    def list_workspaces(self) -> Iterable[Any]:
        return self.inner.list_workspaces()  # type: ignore[no-any-return]

    def get_workspace(self, workspace_name: str) -> Any:
        return self.inner.get_workspace(workspace_name)

    def update_workspace(self, workspace: Any) -> Any:
        new = workspace.default_artifact_root
        if new is None:  # the root is not being changed
            return self.inner.update_workspace(workspace)
        name = workspace.name
        all_roots = self.workspace_roots()
        old = all_roots.get(name, WorkspaceRoot(None))
        if not routes_by_root(new):  # "" clears; ws-/mlflow-artifacts: MLflow's own layout
            if not routes_by_root(old.url):
                return self.inner.update_workspace(workspace)
            raise refusals.mlflow_error(
                StorageLocationError(
                    f"Refused to clear the default_artifact_root of workspace '{name}' "
                    f"({old.url}) or to point it at MLflow's own layout ({new or 'unset'}): its "
                    "artifacts would no longer be found. Set another root inside an approved "
                    "storage location instead."
                )
            )
        config = config_from_env()
        destinations = destinations_from_env(os.environ) or ()
        try:
            new = check_root(config, name, new, destinations=destinations, roots=all_roots)
        except WsArtifactsError as err:
            raise refusals.mlflow_error(err) from err
        if config is None:  # check_root refuses without a configuration; for mypy
            return self.inner.update_workspace(workspace)
        was = old.url if routes_by_root(old.url) else None
        was = was or self._place_without_root(config, name, all_roots)
        previous = old.previous
        if was and was.rstrip("/") != new:
            previous = tuple(dict.fromkeys(u for u in (was, *old.previous) if u.rstrip("/") != new))
        # The old place is recorded first: from now on every worker that still routes to it
        # routes to a place the workspace owns, and reads fall back to it after the change.
        workspace_store.write_previous_roots(self.inner, name, previous)
        try:
            updated = self.inner.update_workspace(workspace)
        except Exception:
            workspace_store.write_previous_roots(self.inner, name, old.previous)
            raise
        finally:
            roots.forget_all()
        _logger.info("workspace %s: default_artifact_root %s -> %s", name, old.url, new)
        return updated

    def workspace_roots(self) -> dict[str, WorkspaceRoot]:
        """Every workspace's current and previous roots, from the database."""
        return {
            name: WorkspaceRoot(url, previous)
            for name, (url, previous) in workspace_store.read_workspace_roots(self.inner).items()
        }

    def get_default_workspace(self) -> Any:
        return self.inner.get_default_workspace()

    def resolve_artifact_root(
        self, default_artifact_root: str | None, workspace_name: str
    ) -> tuple[str | None, bool]:
        root, append = self.inner.resolve_artifact_root(default_artifact_root, workspace_name)
        config = config_from_env()
        if (
            routes_by_root(root)
            and not append
            and default_artifact_root
            and config
            and config.locations
        ):
            # The workspace's own root is ws-artifacts' route: experiments keep the server's
            # (proxied) layout, and the bytes go to the root with the location's credentials.
            return default_artifact_root, True
        return root, append

    def resolve_trace_archival_config(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.resolve_trace_archival_config(*args, **kwargs)

    # -- what follows the artifacts -----------------------------------------------------
    def create_workspace(self, workspace: Any) -> Any:
        name = workspace.name
        moved: list[tuple[Entry, Place]] = []
        root = workspace.default_artifact_root or None
        if root is not None and routes_by_root(root):
            try:
                root = check_root(
                    config_from_env(),
                    name,
                    root,
                    destinations=destinations_from_env(os.environ) or (),
                    roots=self.workspace_roots(),
                )
            except WsArtifactsError as err:
                raise refusals.mlflow_error(err) from err
        if is_valid_workspace_name(name) and name != DEFAULT_WORKSPACE and not self._exists(name):
            places = self._places(name, required=False, root=root)
            moved = self._move_all(places, "leftovers found at create_workspace")
            for entry, place in moved:
                _logger.warning(
                    "workspace %s is being created, but its place %s already held %d "
                    "object(s) (%d bytes) of an earlier owner: moved to %s",
                    name,
                    place.uri,
                    entry.objects,
                    entry.bytes,
                    backend_for(place.route).key_uri(entry.root),
                )
        try:
            created = self.inner.create_workspace(workspace)  # MLflow refuses an existing name
            # Only now: a refused create must not erase an existing workspace's previous roots.
            workspace_store.write_previous_roots(
                self.inner, name, ()
            )  # none left by an earlier owner
            return created
        except Exception:
            self._put_back(moved)  # e.g. created meanwhile by another
            raise
        finally:
            roots.forget_all()

    def delete_workspace(self, workspace_name: str, mode: Any = None) -> None:
        args = () if mode is None else (mode,)
        if workspace_name == DEFAULT_WORKSPACE or not self._exists(workspace_name):
            try:
                self.inner.delete_workspace(workspace_name, *args)  # MLflow's own refusal
            except exceptions.MlflowException as err:
                _refused(err, workspace_name)
                raise
            return
        try:
            workspace_store.check_workspace_deletable(
                self.inner, workspace_name, mode or "RESTRICT"
            )
        except exceptions.MlflowException as err:  # INVALID_STATE: MLflow would answer 500
            _refused(err, workspace_name)
            raise
        places = self._places(workspace_name, required=True)
        reason = f"delete_workspace {workspace_store.deletion_mode_name(mode or 'RESTRICT')}"
        moved = self._move_all(places, reason)
        try:
            self.inner.delete_workspace(workspace_name, *args)
        except exceptions.MlflowException as err:
            self._put_back(moved)
            _refused(err, workspace_name)
            raise
        except Exception:
            self._put_back(moved)
            raise
        self._move_all(places, reason)  # written between the move and the row delete
        workspace_store.write_previous_roots(self.inner, workspace_name, ())
        roots.forget_all()

    # -- helpers ------------------------------------------------------------------------
    def _exists(self, name: str) -> bool:
        try:
            self.inner.get_workspace(name)
        except Exception as err:
            if exceptions.is_not_found(err):
                return False
            raise
        return True

    def _place_without_root(
        self, config: Config, workspace: str, all_roots: dict[str, WorkspaceRoot]
    ) -> str | None:
        """The URL whose ``workspaces/<ws>`` is the workspace's place while it has no root:
        a glob route's, or the server's first destination."""
        destinations = destinations_from_env(os.environ) or ()
        if not destinations:
            return None
        destination = destinations[0].removeprefix("ws-")
        others = {k: v for k, v in all_roots.items() if k != workspace}
        try:
            route = Router(config, destination, others).route_for(workspace)
        except WsArtifactsError:
            return None
        return destination if route.is_destination else route.url

    def _places(self, workspace: str, *, required: bool, root: str | None = None) -> list[Place]:
        """The workspace's current place and its route's previous places (none: nothing of it
        can have been written); ``root``: the root it is being created with."""
        config = config_from_env()
        destinations = destinations_from_env(os.environ) or ()
        problem = ""
        if config is None:
            problem = "WS_ARTIFACTS_CONFIG is not set"
        elif not destinations:
            problem = "the server has no ws- artifact destination"
        if problem:
            if not required:
                return []
            raise refusals.mlflow_error(
                ConfigError(
                    f"Refused to delete workspace '{workspace}': {problem}, so its artifacts "
                    "cannot be found and moved to quarantine. Start the server with "
                    "--artifacts-destination (or --default-artifact-root) ws-... and "
                    "WS_ARTIFACTS_CONFIG, or use the plain database URI as "
                    "--workspace-store-uri to delete rows only."
                )
            )
        if config is None:
            return []
        destination = destinations[0].removeprefix("ws-")
        scheme, location = destination.split("://", 1)[0], destination.split("://", 1)[1]
        all_roots = self.workspace_roots() if config.locations else {}
        if root is not None:
            all_roots[workspace] = WorkspaceRoot(root)
        router = Router(config, f"{scheme}://{location.split('/', 1)[0]}", all_roots)
        try:
            return places_of(router, destination, workspace)
        except UnroutedWorkspaceError:
            return []

    def _move_all(self, places: list[Place], reason: str) -> list[tuple[Entry, Place]]:
        """Quarantine every place, stamped with one time; on a failure, what was moved is put
        back first, then the error is raised."""
        moment = dt.datetime.now(dt.UTC).replace(microsecond=0)
        moved: list[tuple[Entry, Place]] = []
        for place in places:
            try:
                entry = quarantine_place(place, reason, now=moment)
            except WsArtifactsError as err:
                self._put_back(moved)
                raise refusals.mlflow_error(err) from err
            if entry is not None:
                moved.append((entry, place))
        return moved

    def _put_back(self, moved: list[tuple[Entry, Place]]) -> None:
        for entry, place in moved:
            try:
                restore(entry, place)
            except WsArtifactsError as err:
                _logger.error(
                    "workspace %s was not deleted, and moving its artifacts back from %s failed "
                    "(%s); they are safe there: run `ws-artifacts restore %s` to move them back",
                    entry.workspace,
                    backend_for(place.route).key_uri(entry.root),
                    err,
                    entry.workspace,
                )
