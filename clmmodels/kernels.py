"""The kernels the report batch starts: on Unix sockets, not TCP ports.

A TCP kernel's ports are picked by binding free ones and releasing them before the kernel
binds them itself; two workers starting kernels at the same moment can be handed the same
port, and the kernel that loses dies before replying to ``kernel_info`` ("Address already in
use", seen in this project's own suite). Unix sockets (ZeroMQ's ``ipc`` transport), named
in a private folder per kernel, cannot collide. Windows has no ``ipc`` transport and keeps
TCP.

A worker killed outright (SIGKILL) cannot remove its kernel's folder, which is named after the
worker's process id: the next batch removes the folders of processes that are gone.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path


def kernel_manager_class() -> type:
    """The kernel manager class for nbclient (papermill's ``kernel_manager_class``)."""
    if os.name == "nt":
        from jupyter_client import AsyncKernelManager  # nbclient's own default

        return AsyncKernelManager
    _remove_orphans()
    return _ipc_manager()


_PREFIX = "clm-kernel-"


@functools.cache  # once per process
def _remove_orphans() -> None:
    """Remove the socket folders of workers that are gone (killed before their cleanup)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*-*"):
        pid = folder.name[len(_PREFIX) :].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


@functools.cache  # one class, built on first use: only the batch's workers import jupyter_client
def _ipc_manager() -> type:
    from jupyter_client import AsyncKernelManager
    from traitlets import default

    class IpcKernelManager(AsyncKernelManager):
        """A kernel on Unix sockets in a private temporary folder, removed with the kernel."""

        @default("transport")
        def _transport_ipc(self) -> str:
            return "ipc"

        @default("ip")
        def _ip_in_private_folder(self) -> str:
            # A short path: a socket's path has at most 104-108 bytes (macOS, Linux).
            self._ipc_folder = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")
            return os.path.join(self._ipc_folder, "k")

        async def cleanup_resources(self, restart: bool = False) -> None:
            # nbclient awaits it after every run, however the kernel ended
            await super().cleanup_resources(restart=restart)
            folder = getattr(self, "_ipc_folder", None)
            if folder and not restart:
                shutil.rmtree(folder, ignore_errors=True)

    return IpcKernelManager
