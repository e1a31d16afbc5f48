"""One run of the hook: the payload, its event id, and whether it is safely in the spool."""

from __future__ import annotations

from trailguard.capture.hook_client.config import load_config
from trailguard.capture.hook_client.support import describe_exception
from trailguard.ids import new_event_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, TextIO

    from trailguard.capture.hook_client.config import HookConfig
    from trailguard.capture.hook_client.transcript import TranscriptUsage

    Json = dict[str, Any]


class Invocation:
    """One hook run: the payload, its id, and whether it is safely in the spool."""

    __slots__ = (
        "config",
        "environ",
        "err",
        "event",
        "event_id",
        "gateway",
        "observed_at",
        "payload",
        "spool_error",
        "spooled_path",
        "usage",
    )

    def __init__(
        self,
        payload: Json,
        event: str,
        environ: Mapping[str, str],
        observed_at: str,
        err: TextIO,
        gateway: str | None = None,
    ) -> None:
        self.gateway = gateway
        """``--gateway URL`` from the command line, if given."""
        self.observed_at = observed_at
        self.payload = payload
        self.event = event
        self.environ = environ
        self.err = err
        self.event_id: str | None = None
        self.config: HookConfig | None = None
        self.spooled_path: str | None = None
        self.spool_error: str | None = None
        self.usage: TranscriptUsage | None = None
        """Transcript usage in the payload, whose read position is saved once it is safe."""

    def usage_delivered(self) -> None:
        """The payload (and the usage in it) is with the gateway or in the spool: move the
        transcript read position past it. A failure only means it is sent again later."""
        if self.usage is None:
            return
        try:
            self.usage.commit()
        except Exception as exc:
            self.err.write(
                "trailguard: cannot save the transcript read position "
                f"({describe_exception(exc)}); its usage may be sent again\n"
            )

    def release_usage(self) -> None:
        if self.usage is not None:
            self.usage.release()

    def spool(self, reason: str) -> None:
        """Spool the event; remember a failure instead of raising (the answer must go out)."""
        if self.spooled_path is not None:
            return
        try:
            if self.config is None:
                self.config = load_config(self.environ, self.gateway)
            if self.event_id is None:
                self.event_id = new_event_id()
            from trailguard.capture.hook_client import spool

            self.spooled_path = spool.spool_event(self.config, self.event_id, self.payload, reason)
        except Exception as exc:
            self.spool_error = describe_exception(exc)
            return
        self.usage_delivered()

    def saved_sentence(self, when: str) -> str:
        if self.spooled_path is not None:
            return f"The event was saved locally and will be sent {when}."
        return (
            f"The event could not be saved locally either ({self.spool_error}), so it is not in "
            "the audit trail."
        )
