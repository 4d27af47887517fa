"""Reading the configuration and the protocol library again (SIGHUP or ``config.reload``),
and the audit records of what was loaded, at start-up and at each reload."""

from __future__ import annotations

import asyncio

import structlog

from pumpd.config import DaemonConfig, load_config
from pumpd.daemon.state import DaemonState
from pumpd.daemon.wiring import library_sha256
from pumpd.protocols import Library, load_library
from pumpd.reloading import needing_restart, reloaded

log = structlog.get_logger("pumpd.daemon")


class DaemonReload(DaemonState):
    """What was loaded, written down; and a reload of what can change without a restart."""

    async def _record_loaded(self, cfg: DaemonConfig, library: Library) -> None:
        await self._audit("config.loaded", {"path": str(cfg.path)[:500], "sha256": cfg.sha256})
        await self._audit(
            "protocol_library.loaded",
            {
                "library_sha256": library_sha256(library),
                "protocols": [
                    {
                        "protocol_id": e.protocol.id,
                        "protocol_version": str(e.protocol.version),
                        "sha256": e.sha256,
                    }
                    for e in library
                ],
            },
        )
        log.info(
            "configuration and protocol library loaded",
            config_sha256=cfg.sha256,
            library_sha256=library_sha256(library),
            protocols=len(library.entries),
        )

    async def reload(self) -> dict[str, str]:
        """Re-read the file: roles, staff settings and the protocol library take effect.

        A file that does not load, or a library that does not, changes nothing (raises).
        What is taken over and what needs a restart is marked on each ``DaemonConfig`` field
        (``pumpd.reloading``); a changed restart field is reported by name.
        """
        async with self._reload_lock:
            new = await asyncio.to_thread(load_config, self.config.path)
            library = await asyncio.to_thread(load_library, new.protocols)
            fixed = needing_restart(self.config, new)
            await self._record_loaded(new, library)
            self.library = library
            self.config = reloaded(self.config, new)
            if self.control is not None:
                self.control.update(library=library, roles=new.roles, config=self.config)
            if fixed:
                log.warning("reload: these settings need a restart", keys=fixed)
            log.info("configuration reloaded", config_sha256=new.sha256)
            return {"config_sha256": new.sha256, "library_sha256": library_sha256(library)}
