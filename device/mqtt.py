"""Publish readings and status over MQTT (paho-mqtt 2.x), with Home Assistant discovery.

Topics, under ``<prefix>/<device_id>/``: ``reading`` (accepted readings, QoS 1), ``rejected``
(QoS 1), ``status`` (retained), ``availability`` (retained ``online``; the broker publishes the
last will ``offline`` if the daemon dies) and ``command`` (``read`` or ``{"action": "read"}``
asks for a reading now).

Accepted readings are durable: each is appended (fsynced) to an on-disk spool before it is
handed to paho, and removed only when the broker's PUBACK arrives, so a broker outage or a
daemon restart loses nothing (delivery is at least once; consumers de-duplicate by ``id``).
Network work happens on paho's loop thread and spool writes on a writer thread (an fsync on an
SD card can stall); ``on_event``/``on_status`` only hand work over, so they never wait.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from device.errors import OutputError
from device.events import ReadingEvent, Status
from device.lifecycle import Closeable
from device.reading import Reading
from device.spool import Spool

if TYPE_CHECKING:
    from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

    from device.config import MqttConfig

logger = logging.getLogger(__name__)

QOS = 1
# Backoff between connection attempts, seconds: quick first retry, then doubling up to a minute
# so a long outage or a wrong password does not hammer the broker.
RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 60.0
# How long close() waits for the broker to acknowledge the "offline" message.
CLOSE_WAIT_S = 1.0
# close() waits this long for the writer to put the last readings on disk (an fsync each).
DRAIN_WAIT_S = 5.0
# Commands are one word or a tiny JSON object; anything longer is not for us.
MAX_COMMAND_BYTES = 256
ONLINE = "online"
OFFLINE = "offline"


class MqttOutput(Closeable):
    """An ``Output`` that publishes to an MQTT broker.

    The constructor reads the password file, opens the spool and (unless ``autostart=False``)
    calls ``start()``, which returns at once: the first connection is made in the background
    and retried with backoff, so an unreachable broker never blocks the daemon. ``on_trigger``
    is called (on paho's thread) when a ``read`` command arrives; it must return quickly.
    """

    def __init__(
        self,
        config: MqttConfig,
        on_trigger: Callable[[], None],
        *,
        autostart: bool = True,
        reconnect_delay: tuple[float, float] = (RECONNECT_MIN_S, RECONNECT_MAX_S),
    ) -> None:
        self.config = config
        self._on_trigger = on_trigger
        for name in ("prefix", "device_id"):
            value = getattr(config, name)
            if not value or any(c in value for c in "+#") or value.startswith("/"):
                raise OutputError(
                    f"mqtt.{name} {value!r} is not a valid topic part; use letters, digits, "
                    "'-' and '_' (no '+', '#' or leading '/')"
                )
        base = f"{config.prefix}/{config.device_id}"
        self.topic_reading = f"{base}/reading"
        self.topic_rejected = f"{base}/rejected"
        self.topic_status = f"{base}/status"
        self.topic_availability = f"{base}/availability"
        self.topic_command = f"{base}/command"

        password = _read_password(config.password_file) if config.password_file else None
        if config.tls and config.ca_file and not Path(config.ca_file).is_file():
            raise OutputError(
                f"mqtt.ca_file {config.ca_file} does not exist; point it at the broker's CA "
                "certificate or set it to '' to use the system store"
            )
        self._spool = Spool(config.queue_dir, config.queue_max)

        # Imported here so the device package imports without paho (it is an optional extra).
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            protocol=mqtt.MQTTv311,
        )
        if config.username:
            client.username_pw_set(config.username, password)
        if config.tls:
            client.tls_set(ca_certs=config.ca_file or None)
        client.will_set(self.topic_availability, OFFLINE, qos=QOS, retain=True)
        # paho's signature says int, but the delay is only ever compared and slept on.
        client.reconnect_delay_set(reconnect_delay[0], reconnect_delay[1])  # type: ignore[arg-type]
        client.on_connect = self._handle_connect
        client.on_connect_fail = self._handle_connect_fail
        client.on_disconnect = self._handle_disconnect
        client.on_publish = self._handle_publish
        client.on_message = self._handle_message
        client.on_subscribe = self._handle_subscribe
        self._client = client

        # _send_lock keeps spooled readings in order between on_event and the on_connect flush;
        # _state_lock guards the small bookkeeping shared with paho's callbacks. paho is never
        # called while _state_lock is held (its on_publish runs under paho's own locks).
        self._send_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._connected = False
        self._commands_ready = False  # the broker acknowledged our command subscription
        self._started = False
        self._closed = False
        self._handed: set[int] = set()  # spool items given to paho by this process
        self._pending: dict[int, int | None] = {}  # paho mid -> spool seq (None: not spooled)
        self._early_acks: set[int] = set()  # PUBACKs that beat our bookkeeping of their mid
        self._connects = 0
        self._problem: str | None = None  # last problem logged at warning/error level
        self._last_status: Status | None = None
        # Accepted readings on their way to the spool; None tells the writer to stop.
        self._incoming: queue.Queue[ReadingEvent | None] = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name="mqtt-spool", daemon=True)
        self._writer.start()
        self._delivered = 0  # readings acknowledged by the broker
        if autostart:
            self.start()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Begin connecting in the background (idempotent)."""
        if self._started:
            return
        self._started = True
        self._client.connect_async(
            self.config.host, self.config.port, keepalive=self.config.keepalive_s
        )
        self._client.loop_start()
        logger.info(
            "MQTT: connecting to %s:%d as %s (topics %s/%s/...)",
            self.config.host,
            self.config.port,
            self.config.client_id,
            self.config.prefix,
            self.config.device_id,
        )

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def commands_ready(self) -> bool:
        """True once the broker has acknowledged the command subscription (SUBACK): commands
        published before that are not delivered to us."""
        return self._commands_ready

    def close(self) -> None:
        """Say ``offline``, disconnect and stop paho's thread; queued readings stay on disk."""
        if self._closed:
            return
        self._closed = True
        self._incoming.put(None)
        self._writer.join(DRAIN_WAIT_S)
        if self._writer.is_alive():
            logger.error(
                "MQTT: %d reading(s) not yet written to %s at shutdown",
                self._incoming.qsize(),
                self.config.queue_dir,
            )
        if self._started:
            if self._connected:
                info = self._client.publish(self.topic_availability, OFFLINE, qos=QOS, retain=True)
                try:
                    info.wait_for_publish(timeout=CLOSE_WAIT_S)
                except (RuntimeError, ValueError):
                    logger.debug("MQTT: 'offline' not sent; the broker's last will covers it")
            self._client.disconnect()
            self._client.loop_stop()
        self._spool.close()

    def health(self) -> dict[str, Any]:
        """Connection state for the status page: connected, queued readings, reconnects, problem."""
        with self._state_lock:
            return {
                "connected": self._connected,
                "queued": len(self._spool) + self._incoming.qsize(),
                "delivered": self._delivered,
                "reconnects": max(0, self._connects - 1),
                "problem": self._problem,
            }

    # -- Output protocol ------------------------------------------------------------------

    def on_event(self, event: ReadingEvent) -> None:
        if self._closed:
            return
        if not event.accepted:
            if self._connected:
                self._publish(self.topic_rejected, _event_payload(event), retain=False)
            return
        self._incoming.put(event)

    def _write_loop(self) -> None:
        """Writer thread: each accepted reading goes to disk, then (if connected) to paho."""
        while (event := self._incoming.get()) is not None:
            try:
                # Durable before any publish attempt: a crash from here on cannot lose it.
                self._spool.append(_event_payload(event))
            except OutputError as e:
                logger.error("MQTT: reading %s not queued: %s", event.id, e)
                continue
            if self._connected:
                self._flush()

    def on_status(self, status: Status) -> None:
        self._last_status = status
        if self._connected and not self._closed:
            self._publish(self.topic_status, _status_payload(status), retain=True)

    def on_frame(self, frame: npt.NDArray[np.uint8], reading: Reading | None) -> None:
        """Frames are not published over MQTT."""

    # -- publishing -----------------------------------------------------------------------

    def _publish(
        self, topic: str, payload: bytes | str, *, retain: bool, seq: int | None = None
    ) -> None:
        info = self._client.publish(topic, payload, qos=QOS, retain=retain)
        with self._state_lock:
            if info.mid in self._early_acks:
                self._early_acks.discard(info.mid)
                acked = True
            else:
                self._pending[info.mid] = seq
                acked = False
        if acked:
            self._acknowledged(seq)

    def _flush(self) -> None:
        """Hand every spooled reading not yet given to paho to it, oldest first."""
        with self._send_lock:
            for seq in self._spool.seqs():
                with self._state_lock:
                    if seq in self._handed:
                        continue
                data = self._spool.read(seq)
                if data is None:
                    continue  # dropped as the oldest of a full queue since we listed it
                with self._state_lock:
                    self._handed.add(seq)
                self._publish(self.topic_reading, data, retain=False, seq=seq)

    def _acknowledged(self, seq: int | None) -> None:
        if seq is None:
            return
        with self._state_lock:
            self._delivered += 1
            self._handed.discard(seq)
        self._spool.remove(seq)

    def _publish_discovery(self) -> None:
        cfg = self.config
        device = {
            "identifiers": [cfg.device_id],
            "name": cfg.device_id.replace("-", " ").title(),
            "manufacturer": "Digit Reader",
            "model": "Raspberry Pi camera digit reader",
            "sw_version": _version(),
        }
        common = {
            "availability_topic": self.topic_availability,
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "device": device,
        }
        configs: list[tuple[str, dict[str, Any]]] = [
            (
                f"{cfg.discovery_prefix}/sensor/{cfg.device_id}_reading/config",
                {
                    "name": "Reading",
                    "unique_id": f"{cfg.device_id}_reading",
                    "state_topic": self.topic_reading,
                    "value_template": "{{ value_json.value }}",
                    "icon": "mdi:counter",
                    **common,
                },
            ),
            (
                f"{cfg.discovery_prefix}/sensor/{cfg.device_id}_confidence/config",
                {
                    "name": "Confidence",
                    "unique_id": f"{cfg.device_id}_confidence",
                    "state_topic": self.topic_reading,
                    "value_template": "{{ (value_json.confidence * 100) | round(1) }}",
                    "unit_of_measurement": "%",
                    "state_class": "measurement",
                    "entity_category": "diagnostic",
                    **common,
                },
            ),
            (
                f"{cfg.discovery_prefix}/binary_sensor/{cfg.device_id}_camera/config",
                {
                    "name": "Camera problem",
                    "unique_id": f"{cfg.device_id}_camera",
                    "device_class": "problem",
                    "state_topic": self.topic_status,
                    "value_template": "{{ 'OFF' if value_json.camera_ok else 'ON' }}",
                    "payload_on": "ON",
                    "payload_off": "OFF",
                    "entity_category": "diagnostic",
                    **common,
                },
            ),
        ]
        for topic, payload in configs:
            self._publish(topic, json.dumps(payload), retain=True)

    # -- paho callbacks (paho's loop thread) ----------------------------------------------

    def _handle_connect(
        self,
        client: Client,
        userdata: Any,
        flags: ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            if reason.value in (4, 5, 134, 135):  # bad user name or password / not authorised
                hint = (
                    f"check mqtt.username ({self.config.username or 'empty'}) and the password in "
                    f"mqtt.password_file ({self.config.password_file or 'not set'})"
                )
            else:
                hint = "check the broker's log"
            self._report(
                logging.ERROR,
                f"MQTT broker {self.config.host}:{self.config.port} refused the connection "
                f"({reason}); {hint}; retrying with backoff",
            )
            return
        with self._state_lock:
            self._connects += 1
            self._connected = True
            self._commands_ready = False
            self._problem = None
        logger.info("MQTT: connected to %s:%d", self.config.host, self.config.port)
        client.subscribe(self.topic_command, qos=QOS)
        self._publish(self.topic_availability, ONLINE, retain=True)
        if self.config.discovery:
            self._publish_discovery()
        if self._last_status is not None:
            self._publish(self.topic_status, _status_payload(self._last_status), retain=True)
        self._flush()

    def _handle_subscribe(
        self,
        client: Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if any(rc.is_failure for rc in reason_codes):
            self._report(logging.WARNING, f"MQTT: the broker refused {self.topic_command}")
            return
        self._commands_ready = True

    def _handle_connect_fail(self, client: Client, userdata: Any) -> None:
        # paho does not pass the exception on; with TLS a certificate problem looks the same.
        tls_hint = " or its TLS certificate is not trusted (check mqtt.ca_file)"
        self._report(
            logging.WARNING,
            f"cannot reach MQTT broker {self.config.host}:{self.config.port}"
            f"{tls_hint if self.config.tls else ''}; readings are queued in "
            f"{self.config.queue_dir} and the connection is retried with backoff",
        )

    def _handle_disconnect(
        self,
        client: Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._state_lock:
            was_connected = self._connected
            self._connected = False
            self._commands_ready = False
        if was_connected and not self._closed:
            self._report(
                logging.WARNING,
                f"lost the connection to MQTT broker {self.config.host}:{self.config.port} "
                f"({reason}); readings are queued and sent when it is back",
            )

    def _handle_publish(
        self,
        client: Client,
        userdata: Any,
        mid: int,
        reason: ReasonCode,
        properties: Properties,
    ) -> None:
        with self._state_lock:
            if mid not in self._pending:
                self._early_acks.add(mid)
                return
            seq = self._pending.pop(mid)
        self._acknowledged(seq)

    def _handle_message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:
        if message.topic != self.topic_command:
            return
        if _is_read_command(message.payload):
            logger.info("MQTT: read command received")
            try:
                self._on_trigger()
            except Exception:
                # The top of paho's thread: an exception here would kill the MQTT loop.
                logger.exception("MQTT: the trigger callback failed")
            return
        logger.warning(
            'MQTT: ignoring command %r on %s; send \'read\' or {"action": "read"}',
            message.payload[:64],
            message.topic,
        )

    def _report(self, level: int, problem: str) -> None:
        """Log a problem once at ``level``; repeats of the same problem (retries) go to debug."""
        with self._state_lock:
            repeated = problem == self._problem
            self._problem = problem
        logger.log(logging.DEBUG if repeated else level, "%s", problem)


def _version() -> str:
    # From the installed metadata, not device.__version__: an editable install made before
    # device/__init__.py existed maps the package as a namespace that never runs __init__.
    try:
        return metadata.version("digit-reader")
    except metadata.PackageNotFoundError:
        return "unknown"


def _read_password(path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise OutputError(
            f"cannot read the MQTT password file {path} ({e.strerror}); create it (mode 600, "
            "readable by the daemon's user) or set mqtt.password_file to ''"
        ) from e
    password = text.rstrip("\r\n")
    if not password:
        raise OutputError(f"the MQTT password file {path} is empty; write the password into it")
    return password


def _is_read_command(payload: bytes | bytearray) -> bool:
    if len(payload) > MAX_COMMAND_BYTES:
        return False
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        return False
    if text.lower() == "read":
        return True
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("action") == "read"


def _event_payload(event: ReadingEvent) -> bytes:
    digits = event.reading.digits
    payload: dict[str, Any] = {
        "id": event.id,
        "value": event.value,
        "digits": [d.label for d in digits],
        "confidences": [round(d.confidence, 4) for d in digits],
        "confidence": round(event.reading.min_confidence, 4),
        "time": event.time,
    }
    if not event.accepted:
        payload["reason"] = event.reason or event.reading.reason
    return json.dumps(payload, separators=(",", ":")).encode()


def _status_payload(status: Status) -> bytes:
    data = status.to_dict()
    data["time"] = time.time()
    return json.dumps(data, separators=(",", ":")).encode()
