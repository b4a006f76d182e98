"""MqttOutput against a real mosquitto broker on 127.0.0.1: topics, discovery, last will, spool."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fixtures_mqtt import TIMEOUT_SCALE, Broker, Recorder, find_mosquitto, free_port, wait_for

from device.config import MqttConfig
from device.errors import OutputError
from device.events import ReadingEvent, Status
from device.mqtt import MqttOutput
from device.reading import DigitResult, Reading

pytestmark = pytest.mark.skipif(
    find_mosquitto() is None, reason="mosquitto is not installed (apt-get install mosquitto)"
)

REPO = Path(__file__).resolve().parent.parent
FAST_RETRY = (0.1, 0.5)  # seconds; the daemon uses 1..60 s
BASE = "digit-reader/test-dev"


def reading(text: str = "42", conf: float = 0.97) -> Reading:
    digits = tuple(
        DigitResult(int(c), conf + 0.01 * i, (10 * i, 0, 8, 12)) for i, c in enumerate(text)
    )
    return Reading(text, digits, True)


def accepted(text: str = "42") -> ReadingEvent:
    return ReadingEvent(reading(text), accepted=True)


def retained_after_delivery(port: int, topic: str) -> list[bytes]:
    """What a late subscriber gets on ``topic`` once an early one has seen it arrive."""
    probe = Recorder(port, [topic])
    wait_for(lambda: probe.on(topic))
    probe.close()
    late = Recorder(port, [topic])
    try:
        return list(wait_for(lambda: late.retained(topic)))
    finally:
        late.close()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    with Broker(tmp_path) as b:
        yield b


def config(tmp_path: Path, port: int, **kw: object) -> MqttConfig:
    fields: dict[str, object] = {
        "enabled": True,
        "port": port,
        "client_id": "test-dev",
        "device_id": "test-dev",
        "queue_dir": str(tmp_path / "queue"),
    }
    return replace(MqttConfig(), **{**fields, **kw})


@pytest.fixture
def output(tmp_path: Path, broker: Broker) -> Iterator[MqttOutput]:
    out = MqttOutput(config(tmp_path, broker.port), lambda: None, reconnect_delay=FAST_RETRY)
    wait_for(lambda: out.connected)
    yield out
    out.close()


def test_discovery_configs_are_retained_and_point_at_our_topics(
    broker: Broker, output: MqttOutput
) -> None:
    # Once a first subscriber has seen all three, a late one getting them proves retention.
    probe = Recorder(broker.port, ["homeassistant/#"])
    wait_for(lambda: len({t for t, _, _ in probe.messages}) >= 3)
    probe.close()
    rec = Recorder(broker.port, ["homeassistant/#"])
    try:
        wait_for(lambda: len(rec.messages) >= 3)
        topics = {t for t, _, retained in rec.messages if retained}
        reading_t = "homeassistant/sensor/test-dev_reading/config"
        conf_t = "homeassistant/sensor/test-dev_confidence/config"
        camera_t = "homeassistant/binary_sensor/test-dev_camera/config"
        assert topics == {reading_t, conf_t, camera_t}
        cfgs = {t: json.loads(rec.on(t)[0]) for t in topics}
    finally:
        rec.close()
    for cfg in cfgs.values():
        assert cfg["availability_topic"] == f"{BASE}/availability"
        assert cfg["device"]["identifiers"] == ["test-dev"]
        assert "{{" in cfg["value_template"]
    assert cfgs[reading_t]["unique_id"] == "test-dev_reading"
    assert cfgs[reading_t]["state_topic"] == f"{BASE}/reading"
    assert cfgs[conf_t]["unique_id"] == "test-dev_confidence"
    assert cfgs[camera_t]["device_class"] == "problem"
    assert cfgs[camera_t]["state_topic"] == f"{BASE}/status"


def test_discovery_can_be_switched_off(tmp_path: Path, broker: Broker) -> None:
    cfg = config(tmp_path, broker.port, discovery=False)
    with MqttOutput(cfg, lambda: None, reconnect_delay=FAST_RETRY) as out:
        wait_for(lambda: out.connected)
        rec = Recorder(broker.port, ["homeassistant/#", f"{BASE}/availability"])
        wait_for(lambda: rec.on(f"{BASE}/availability"))
        rec.close()
    assert not [t for t, _, _ in rec.messages if t.startswith("homeassistant/")]


def test_accepted_reading_is_published_as_json_and_leaves_the_spool(
    broker: Broker, output: MqttOutput
) -> None:
    rec = Recorder(broker.port, [f"{BASE}/#"])
    event = accepted("507")
    output.on_event(event)
    try:
        payload = json.loads(wait_for(lambda: rec.on(f"{BASE}/reading"))[0])
    finally:
        rec.close()
    assert payload["id"] == event.id
    assert payload["value"] == "507"
    assert payload["digits"] == [5, 0, 7]
    assert payload["confidences"] == [0.97, 0.98, 0.99]
    assert payload["confidence"] == 0.97
    assert payload["time"] == event.time
    wait_for(lambda: output.health()["queued"] == 0)
    assert output.health()["delivered"] == 1
    assert not list((Path(output.config.queue_dir)).iterdir())


def test_rejected_reading_goes_to_its_own_topic_and_is_not_spooled(
    broker: Broker, output: MqttOutput
) -> None:
    rec = Recorder(broker.port, [f"{BASE}/#"])
    output.on_event(ReadingEvent(reading("13"), accepted=False, reason="low confidence"))
    try:
        payload = json.loads(wait_for(lambda: rec.on(f"{BASE}/rejected"))[0])
        time.sleep(0.1)
        assert rec.on(f"{BASE}/reading") == []
    finally:
        rec.close()
    assert payload["value"] == "13"
    assert payload["reason"] == "low confidence"
    assert output.health()["delivered"] == 0


def test_status_is_retained_for_late_subscribers(broker: Broker, output: MqttOutput) -> None:
    output.on_status(Status(frames=12, fps=2.5, camera_ok=False, model_version="abc123"))
    payload = json.loads(retained_after_delivery(broker.port, f"{BASE}/status")[-1])
    assert payload["frames"] == 12
    assert payload["camera_ok"] is False
    assert payload["model_version"] == "abc123"


def test_availability_is_online_while_connected_and_offline_after_close(
    tmp_path: Path, broker: Broker
) -> None:
    out = MqttOutput(config(tmp_path, broker.port), lambda: None, reconnect_delay=FAST_RETRY)
    wait_for(lambda: out.connected)
    assert retained_after_delivery(broker.port, f"{BASE}/availability") == [b"online"]
    rec = Recorder(broker.port, [f"{BASE}/availability"])
    out.close()
    wait_for(lambda: rec.on(f"{BASE}/availability")[-1:] == [b"offline"])
    rec.close()
    assert retained_after_delivery(broker.port, f"{BASE}/availability") == [b"offline"]


PUBLISHER = """
import sys, time
from dataclasses import replace
from device.config import MqttConfig
from device.mqtt import MqttOutput
cfg = replace(MqttConfig(), enabled=True, port=int(sys.argv[1]), client_id="test-dev",
              device_id="test-dev", queue_dir=sys.argv[2])
out = MqttOutput(cfg, lambda: None)
deadline = time.monotonic() + 20
while not out.connected and time.monotonic() < deadline:
    time.sleep(0.02)
print("connected" if out.connected else "not connected", flush=True)
time.sleep(30)
"""


def test_last_will_says_offline_when_the_publisher_is_killed(
    tmp_path: Path, broker: Broker
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, str(broker.port), str(tmp_path / "q")],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    rec = Recorder(broker.port, [f"{BASE}/availability"])
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"connected"
        wait_for(lambda: rec.on(f"{BASE}/availability")[-1:] == [b"online"])
        os.kill(proc.pid, signal.SIGKILL)  # no close(), no DISCONNECT: only the will can say it
        proc.wait(timeout=5)
        wait_for(lambda: rec.on(f"{BASE}/availability")[-1:] == [b"offline"], timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        rec.close()


def test_spooled_readings_survive_a_restart_and_arrive_once_in_order(tmp_path: Path) -> None:
    broker = Broker(tmp_path)  # not started: the broker is down while readings come in
    cfg = config(tmp_path, broker.port)
    first = MqttOutput(cfg, lambda: None, reconnect_delay=FAST_RETRY)
    events = [accepted(str(100 + i)) for i in range(5)]
    for event in events:
        first.on_event(event)
    assert first.health()["queued"] == 5
    first.close()  # the daemon restarts while the broker is still away

    with broker:
        rec = Recorder(broker.port, [f"{BASE}/reading"])
        second = MqttOutput(cfg, lambda: None, reconnect_delay=FAST_RETRY)
        try:
            later = accepted("999")
            wait_for(lambda: second.connected)
            second.on_event(later)
            wait_for(lambda: len(rec.on(f"{BASE}/reading")) >= 6)
            wait_for(lambda: second.health()["queued"] == 0)
            time.sleep(0.3)  # room for any duplicate to show up
            ids = [json.loads(p)["id"] for p in rec.on(f"{BASE}/reading")]
        finally:
            second.close()
            rec.close()
    assert ids == [e.id for e in [*events, later]]


def test_readings_during_a_broker_outage_are_sent_after_reconnect(
    tmp_path: Path, broker: Broker
) -> None:
    # The output must not reconnect (and flush) before the test's subscriber is subscribed, or
    # the readings reach the broker while nobody listens: give it a slower retry than the others.
    slow = (2.0 * TIMEOUT_SCALE, 4.0 * TIMEOUT_SCALE)
    out = MqttOutput(config(tmp_path, broker.port), lambda: None, reconnect_delay=slow)
    try:
        wait_for(lambda: out.connected)
        broker.stop()
        wait_for(lambda: not out.connected)
        events = [accepted(str(i)) for i in range(3)]
        started = time.monotonic()
        for event in events:
            out.on_event(event)
        assert time.monotonic() - started < 0.5, "on_event must not wait for the broker"
        health = out.health()
        assert health["connected"] is False
        assert "lost the connection" in health["problem"]
        broker.start()
        rec = Recorder(broker.port, [f"{BASE}/reading"])
        wait_for(lambda: len(rec.on(f"{BASE}/reading")) >= 3, timeout=20)
        time.sleep(0.3)
        ids = [json.loads(p)["id"] for p in rec.on(f"{BASE}/reading")]
        rec.close()
        assert ids == [e.id for e in events]
        assert out.health()["reconnects"] == 1
    finally:
        out.close()


def test_a_slow_disk_does_not_hold_up_the_caller(
    broker: Broker, output: MqttOutput, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = output._spool
    real_append = spool.append

    def slow_append(data: bytes) -> int:
        time.sleep(0.3)  # an SD card fsync under write load
        return real_append(data)

    monkeypatch.setattr(spool, "append", slow_append)
    rec = Recorder(broker.port, [f"{BASE}/reading"])
    events = [accepted(str(i)) for i in range(3)]
    started = time.monotonic()
    for event in events:
        output.on_event(event)
    assert time.monotonic() - started < 0.1
    wait_for(lambda: len(rec.on(f"{BASE}/reading")) == 3)
    rec.close()
    assert [json.loads(p)["id"] for p in rec.on(f"{BASE}/reading")] == [e.id for e in events]


def test_unreachable_broker_never_blocks_and_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="device.mqtt")
    started = time.monotonic()
    out = MqttOutput(config(tmp_path, free_port()), lambda: None, reconnect_delay=FAST_RETRY)
    out.on_event(accepted())
    out.on_status(Status())
    assert time.monotonic() - started < 0.5
    try:
        wait_for(lambda: out.health()["problem"])
        time.sleep(0.6)  # several retries
        health = out.health()
    finally:
        out.close()
    assert health["connected"] is False
    assert health["queued"] == 1
    assert "cannot reach MQTT broker" in health["problem"]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1  # retries of the same problem only go to debug


def test_wrong_password_logs_one_clear_error_and_keeps_retrying(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="device.mqtt")
    password_file = tmp_path / "mqtt-password"
    password_file.write_text("Xq9-not-it\n")
    with Broker(tmp_path, users={"reader": "right"}) as broker:
        cfg = config(tmp_path, broker.port, username="reader", password_file=str(password_file))
        out = MqttOutput(cfg, lambda: None, reconnect_delay=FAST_RETRY)
        try:
            wait_for(lambda: broker.log.read_text().count("not authorised") >= 3, timeout=10)
            assert not out.connected
        finally:
            out.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "refused the connection" in errors[0]
    assert "mqtt.username (reader)" in errors[0]
    assert str(password_file) in errors[0]
    assert "Xq9-not-it" not in errors[0]  # never log the password


def test_password_from_the_password_file_logs_in(tmp_path: Path) -> None:
    password_file = tmp_path / "mqtt-password"
    password_file.write_text("s3cret\n")  # trailing newline as editors write it
    with Broker(tmp_path, users={"reader": "s3cret"}) as broker:
        cfg = config(tmp_path, broker.port, username="reader", password_file=str(password_file))
        with MqttOutput(cfg, lambda: None, reconnect_delay=FAST_RETRY) as out:
            wait_for(lambda: out.connected)
            assert out.health()["problem"] is None


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI is not installed")
def test_tls_connection_verifies_the_broker_against_the_ca_file(tmp_path: Path) -> None:
    with Broker(tmp_path, tls=True) as broker:
        assert broker.ca_file is not None
        cfg = config(tmp_path, broker.port, tls=True, ca_file=str(broker.ca_file))
        with MqttOutput(cfg, lambda: None, reconnect_delay=FAST_RETRY) as out:
            wait_for(lambda: out.connected)
        # Without our CA the system store cannot vouch for the broker: no connection.
        untrusted = config(tmp_path, broker.port, tls=True, ca_file="")
        with MqttOutput(untrusted, lambda: None, reconnect_delay=FAST_RETRY) as out:
            problem = wait_for(lambda: out.health()["problem"])
            assert not out.connected
        assert "mqtt.ca_file" in problem


def test_missing_ca_file_is_a_clear_error(tmp_path: Path) -> None:
    cfg = config(tmp_path, 8883, tls=True, ca_file=str(tmp_path / "ca.crt"))
    with pytest.raises(OutputError, match=r"mqtt\.ca_file .*ca\.crt does not exist"):
        MqttOutput(cfg, lambda: None, autostart=False)


def test_missing_password_file_is_a_clear_error(tmp_path: Path) -> None:
    cfg = config(tmp_path, 1883, username="reader", password_file=str(tmp_path / "nope"))
    with pytest.raises(OutputError, match=r"cannot read the MQTT password file .*nope"):
        MqttOutput(cfg, lambda: None, autostart=False)


def test_topic_wildcards_in_device_id_are_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"mqtt\.device_id"):
        MqttOutput(config(tmp_path, 1883, device_id="a/#"), lambda: None, autostart=False)


@pytest.mark.parametrize("payload", [b"read", b" READ\n", b'{"action": "read"}'])
def test_read_command_calls_the_trigger(tmp_path: Path, broker: Broker, payload: bytes) -> None:
    calls: list[float] = []
    cfg = config(tmp_path, broker.port)
    with MqttOutput(cfg, lambda: calls.append(time.monotonic()), reconnect_delay=FAST_RETRY) as out:
        wait_for(lambda: out.commands_ready)
        rec = Recorder(broker.port, [f"{BASE}/availability"])
        rec.client.publish(f"{BASE}/command", payload, qos=1).wait_for_publish(5)
        wait_for(lambda: calls)
        rec.close()
    assert len(calls) == 1


@pytest.mark.parametrize(
    "payload", [b"reboot", b'{"action": "erase"}', b"[1, 2]", b"\xff\xfe", b"read" * 100]
)
def test_malformed_command_is_ignored_with_a_warning(
    tmp_path: Path, broker: Broker, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="device.mqtt")
    calls: list[int] = []
    cfg = config(tmp_path, broker.port)
    with MqttOutput(cfg, lambda: calls.append(1), reconnect_delay=FAST_RETRY) as out:
        wait_for(lambda: out.commands_ready)
        rec = Recorder(broker.port, [f"{BASE}/availability"])
        rec.client.publish(f"{BASE}/command", payload, qos=1).wait_for_publish(5)
        wait_for(lambda: any("ignoring command" in r.getMessage() for r in caplog.records))
        rec.close()
        assert out.connected  # a bad command does not disturb the connection
    assert calls == []


def test_a_failing_trigger_does_not_stop_the_mqtt_loop(
    tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    def boom() -> None:
        raise RuntimeError("daemon is shutting down")

    with MqttOutput(config(tmp_path, broker.port), boom, reconnect_delay=FAST_RETRY) as out:
        # The command must not reach the broker before our subscription does.
        wait_for(lambda: out.commands_ready)
        rec = Recorder(broker.port, [f"{BASE}/reading"])
        rec.client.publish(f"{BASE}/command", b"read", qos=1).wait_for_publish(5)
        wait_for(lambda: any("trigger callback failed" in r.getMessage() for r in caplog.records))
        out.on_event(accepted("7"))
        wait_for(lambda: rec.on(f"{BASE}/reading"))
        rec.close()
