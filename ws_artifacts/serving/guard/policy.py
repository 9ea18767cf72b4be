"""Which locations a workspace may point at: the pure half of the API guard.

:class:`LocationPolicy` answers one question: may a request in workspace ``W`` store this URI as
a model version's source, a trace's artifact location, a workspace's artifact root...? It does
no network I/O and imports nothing from MLflow; ``runs:/`` and ``models:/`` URIs are resolved by
a callable the server side hands in (it looks them up in the caller's workspace).

The rules, by scheme:

* ``ws-<scheme>://location/path``: the path must name ``workspaces/W`` (or, for the default
  workspace, no workspace at all), and the place ws-artifacts routes it to must be ``W``'s own
  route, or a destination this server was started with.
* ``mlflow-artifacts:/path`` (no host): the path must name ``workspaces/W`` (default: a legacy
  path is fine too).
* ``runs:/<run>/<path>`` and ``models:/...``: resolved in the caller's workspace (a run or model
  of another workspace is not found there), then the underlying location is checked the same
  way. Anything that does not resolve is refused.
* a workspace's ``default_artifact_root`` other than the two forms above
  (:meth:`LocationPolicy.check_workspace_root`): it must lie inside an approved storage location
  and overlap no other workspace's place (:func:`ws_artifacts.core.locations.check_root`; the
  provider checks again against every root in the database).
* anything else (``s3://``, ``gs://``, ``file://``, a bare path, ``http://``...): refused unless
  it lies inside ``W``'s own place from the configuration: ``<route url>/workspaces/W``, or
  ``<destination>/workspaces/W`` for a workspace without a route (the default workspace may also
  use the destination's legacy layout). ``file`` locations are also checked after resolving
  symbolic links.
"""

from __future__ import annotations

import os
import unicodedata
import urllib.parse
from collections.abc import Callable, Sequence

from ws_artifacts.core.config import Config
from ws_artifacts.core.destinations import check_destination
from ws_artifacts.core.errors import OwnershipError, StorageLocationError, WsArtifactsError
from ws_artifacts.core.locations import check_root
from ws_artifacts.core.paths import (
    DEFAULT_WORKSPACE,
    LogicalPath,
    is_valid_workspace_name,
    normalize,
    split_logical,
)
from ws_artifacts.core.quarantine_names import QUARANTINE_SEGMENT, in_quarantine
from ws_artifacts.core.routing import Router
from ws_artifacts.core.targets import Place
from ws_artifacts.core.urls import split_url

__all__ = ["LocationPolicy", "LocationRefused", "Resolver"]

#: Resolves a ``runs:/`` or ``models:/`` URI to the location it stands for, in the caller's
#: workspace; raises LookupError when it cannot.
Resolver = Callable[[str], str]

_MAX_URI_LENGTH = 8192
_MAX_DEPTH = 4
_NO_DESTINATION = "ws-none://"


class LocationRefused(OwnershipError):
    """A request would store a location outside the caller's workspace."""


class LocationPolicy:
    """Checks locations against one configuration and the server's destinations.

    Args:
        config: The ws-artifacts configuration (None: only ``ws-`` and ``mlflow-artifacts``
            locations of the caller's own workspace, and resolvable references, pass).
        destinations: The ``ws-`` destinations the server was started with
            (``--artifacts-destination``, ``--default-artifact-root``).
        follow_links: Resolve symbolic links of ``file`` locations before checking them.
    """

    def __init__(
        self, config: Config | None, destinations: Sequence[str], *, follow_links: bool = True
    ) -> None:
        self.config = config
        self.destinations = tuple(d for d in destinations if d.startswith("ws-"))
        self.follow_links = follow_links
        self._places: dict[str, tuple[Place, ...]] = {}

    def check(
        self,
        uri: str,
        workspace: str,
        *,
        field: str,
        resolve: Resolver | None = None,
        empty_is_unset: bool = True,
    ) -> None:
        """Refuse ``uri`` unless it lies inside ``workspace``.

        Args:
            uri: The location a request wants to store.
            workspace: The caller's workspace (or the workspace being configured).
            field: What the request sets, for the message (``source``, ``trace tag ...``).
            resolve: Resolves ``runs:/`` and ``models:/`` URIs in the caller's workspace.
            empty_is_unset: Whether MLflow reads ``""`` in this field as "not set" (a proto
                field left out), so that it passes. Where MLflow uses ``""`` as a location
                (a trace tag: a local repository on the server's working directory), say False.

        Raises:
            LocationRefused: With the reason and the workspace's own places.
        """
        try:
            if not uri and not empty_is_unset:
                raise LocationRefused(
                    "an empty location is read by MLflow as the server's working directory."
                )
            self._check(uri, workspace, resolve, depth=0)
        except LocationRefused as err:
            raise LocationRefused(
                f"Refused to set {field} to '{_shown(uri)}': {err} Use a location inside "
                f"workspace '{workspace}': {self.describe(workspace)}."
            ) from None

    def check_workspace_root(self, uri: str, workspace: str) -> None:
        """Refuse ``uri`` as ``workspace``'s own ``default_artifact_root`` unless it is
        ``ws-``/``mlflow-artifacts:`` inside the workspace (the rules of :meth:`check`: MLflow's
        own layout) or lies inside an approved storage location without overlapping another
        workspace's place. ``""`` (no root, or clearing it) is the provider's to judge.

        Raises:
            LocationRefused: Why, with the approved locations.
        """
        if not uri or uri.startswith(("ws-", "mlflow-artifacts:")):
            self.check(uri, workspace, field="the workspace default_artifact_root")
            return
        try:
            check_root(self.config, workspace, uri, destinations=self.destinations)
        except StorageLocationError as err:
            raise LocationRefused(str(err)) from None

    def describe(self, workspace: str) -> str:
        """The locations ``workspace`` may use, for messages."""
        forms = [f"mlflow-artifacts:/workspaces/{workspace}/...", "runs:/ or models:/ of it"]
        forms[1:1] = [str(place) + "..." for place in self.places(workspace)]
        return ", ".join(forms)

    def places(self, workspace: str) -> tuple[Place, ...]:
        """Where ``workspace``'s files may be, physically (cached)."""
        cached = self._places.get(workspace)
        if cached is None:
            cached = self._places[workspace] = self._compute_places(workspace)
        return cached

    # -- the rules ----------------------------------------------------------------------
    def _check(self, uri: str, workspace: str, resolve: Resolver | None, *, depth: int) -> None:
        if not uri:
            return
        if not is_valid_workspace_name(workspace):
            raise LocationRefused(f"'{workspace}' is not a valid workspace name.")
        _check_text(uri)
        parts = urllib.parse.urlsplit(uri)
        if parts.query or parts.fragment or uri.endswith(("?", "#")):
            raise LocationRefused("a location may not carry a query or a fragment.")
        if in_quarantine(parts.path) or in_quarantine(parts.netloc):
            raise LocationRefused(
                f"it lies in the quarantine area ('{QUARANTINE_SEGMENT}'), which is nobody's place."
            )
        scheme = parts.scheme
        if scheme.startswith("ws-") and len(scheme) > 3:
            self._check_ws(scheme, parts.netloc, parts.path, workspace)
        elif scheme == "mlflow-artifacts":
            if parts.netloc:
                raise LocationRefused("it names another server; use mlflow-artifacts:/<path>.")
            _check_owner(_split(parts.path), workspace)
        elif scheme in ("runs", "models"):
            if parts.netloc:
                raise LocationRefused(f"{scheme}:// with a host names another tracking server.")
            if resolve is None or depth >= _MAX_DEPTH:
                raise LocationRefused(f"the {scheme}:/ reference cannot be followed here.")
            try:
                target = resolve(uri)
            except (LookupError, WsArtifactsError) as err:
                raise LocationRefused(
                    f"it does not resolve in workspace '{workspace}' ({err})."
                ) from None
            self._check(target, workspace, resolve, depth=depth + 1)
        else:
            self._check_raw(scheme, parts.netloc, parts.path, workspace)

    def _check_ws(self, scheme: str, netloc: str, path: str, workspace: str) -> None:
        logical = _split(path)
        _check_owner(logical, workspace)
        if self.config is None:
            raise LocationRefused("the ws-artifacts configuration is not available.")
        try:
            target = Router(self.config, f"{scheme[3:]}://{netloc}").target(logical)
            check_destination(target, self.destinations)
        except WsArtifactsError as err:
            raise LocationRefused(str(err).removeprefix("Refused: ")) from None

    def _check_raw(self, scheme: str, netloc: str, path: str, workspace: str) -> None:
        if scheme == "" and not path.startswith("/"):
            raise LocationRefused(
                "a relative path is read by MLflow against the server's working directory; "
                "use an absolute path or a URI."
            )
        if scheme in ("", "local"):
            scheme = "file"
        if scheme == "file":
            if netloc:
                raise LocationRefused("a file location may not name a host.")
            path = urllib.parse.unquote(path)  # what MLflow's local repositories read
        clean = _normalized(path)
        for place in self.places(workspace):
            if place.holds(scheme, netloc, clean) and self._same_after_links(scheme, place, clean):
                return
        raise LocationRefused(f"it is not inside a place of workspace '{workspace}'.")

    def _same_after_links(self, scheme: str, place: Place, path: str) -> bool:
        if scheme != "file" or not self.follow_links:
            return True
        real = os.path.realpath("/" + path).lstrip("/")
        scope = os.path.realpath("/" + place.scope).lstrip("/") if place.scope else ""
        return place.holds(scheme, "", real, scope=scope)

    def _compute_places(self, workspace: str) -> tuple[Place, ...]:
        """The current place of ``workspace`` under each destination (and, for the default
        workspace at a destination, the legacy layout), one of each location and scope."""
        if self.config is None or not is_valid_workspace_name(workspace):
            return ()
        places: dict[tuple[str, str, str, bool], Place] = {}
        for destination in self.destinations or (_NO_DESTINATION,):
            scheme, location, prefix = split_url(destination)
            try:
                router = Router(self.config, f"{scheme.removeprefix('ws-')}://{location}")
                root = normalize(prefix)
                found = [router.places(workspace, root)[0]]
            except WsArtifactsError:
                continue  # an unrouted workspace under `unknown_workspaces: deny`
            route = found[0].route
            if route.is_destination and destination == _NO_DESTINATION:
                continue
            if route.is_destination and workspace == DEFAULT_WORKSPACE:
                found.append(router.legacy_place(root))
            for place in found:
                places.setdefault((place.scheme, place.location, place.scope, place.legacy), place)
        return tuple(places.values())


def _check_text(uri: str) -> None:
    if len(uri) > _MAX_URI_LENGTH:
        raise LocationRefused(f"it is longer than {_MAX_URI_LENGTH} characters.")
    if uri != uri.strip() or any(
        unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs") for ch in uri
    ):
        raise LocationRefused("it contains whitespace at an end or a control character.")


def _normalized(path: str) -> str:
    try:
        return normalize(path)
    except WsArtifactsError as err:
        raise LocationRefused(str(err)) from None


def _split(path: str) -> LogicalPath:
    try:
        return split_logical(normalize(path))
    except WsArtifactsError as err:
        raise LocationRefused(str(err)) from None


def _check_owner(logical: LogicalPath, workspace: str) -> None:
    if logical.owner != workspace:
        raise LocationRefused(f"it is in workspace '{logical.owner}', not '{workspace}'.")


def _shown(uri: str) -> str:
    """``uri`` without user information (``user:secret@``) and cut to a readable length."""
    parts = urllib.parse.urlsplit(uri) if len(uri) <= _MAX_URI_LENGTH else None
    if parts is not None and "@" in parts.netloc:
        uri = parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()
    shown = "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in uri[:300])
    return shown + ("..." if len(uri) > 300 else "")
