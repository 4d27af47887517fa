"""pumpd.toml: the documented example loads; every refusal names its key and changes nothing."""

from __future__ import annotations

import os
import pty
from pathlib import Path

import pytest

from pumpd.clinictime import zone_of
from pumpd.config import ConfigError, DaemonConfig, load_config, parse_config
from pumpd.protocols import default_path

DOCUMENTED_EXAMPLE = """
[daemon]
socket = "/run/pumpd/pumpd.sock"          # control socket
socket_group = "pumpd"                    # group owning the socket (mode 0660)
database = "sqlite:////var/lib/pumpd/audit.db"
protocols = "/usr/share/pumpd/protocols"  # default: the packaged library
poll_hz = 10
simulation = false                        # true only for demos and tests
time_scale = 1                            # > 1 allowed only when simulation = true

[roles]                                   # Unix groups → roles; no implicit superuser
nurse = ["pumpd-nurse"]
auditor = ["pumpd-audit"]
admin = ["pumpd-admin"]

[[pump]]
id = "chair-1"
transport = "modbus-tcp"                  # or "modbus-rtu"
address = "127.0.0.1:5020"                # modbus-rtu: device = "/dev/ttyUSB0", baudrate = 19200
unit = 1
profile = "gip-mb1"
"""

PUMP = """
[[pump]]
id = "chair-1"
transport = "modbus-tcp"
address = "127.0.0.1:5020"
unit = 1
"""


def parse(text: str, where: Path = Path("/etc/pumpd/pumpd.toml")) -> DaemonConfig:
    return parse_config(text, path=where)


def problems(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return dict(caught.value.problems)


def test_the_documented_example_loads_as_written() -> None:
    cfg = parse(DOCUMENTED_EXAMPLE)
    assert cfg.socket == Path("/run/pumpd/pumpd.sock")
    assert cfg.socket_group == "pumpd"
    assert cfg.database == "sqlite+pysqlite:////var/lib/pumpd/audit.db"
    assert cfg.protocols == Path("/usr/share/pumpd/protocols")
    assert cfg.poll_hz == 10
    assert cfg.simulation is False
    assert cfg.time_scale == 1
    assert cfg.roles == {
        "nurse": frozenset({"pumpd-nurse"}),
        "auditor": frozenset({"pumpd-audit"}),
        "admin": frozenset({"pumpd-admin"}),
    }
    (pump,) = cfg.pumps
    assert (pump.id, pump.transport, pump.host, pump.port, pump.unit, pump.profile) == (
        "chair-1",
        "modbus-tcp",
        "127.0.0.1",
        5020,
        1,
        "gip-mb1",
    )
    assert pump.address == "127.0.0.1:5020"


def test_defaults_and_optional_keys() -> None:
    cfg = parse(
        """
[daemon]
log_format = "json"
[staff]
idle_timeout_min = 10
max_failures = 5
lockout_min = 15
[[pump]]
id = "chair-3"
transport = "modbus-rtu"
device = "/dev/ttyUSB0"
unit = 3
heartbeat_timeout_s = 20
"""
    )
    assert cfg.protocols == default_path()
    assert cfg.socket_group is None
    # The spool has its own directory, where another file system can be mounted.
    assert cfg.audit_spool == Path("/var/lib/pumpd/spool/audit.spool")
    assert cfg.log_format == "json"
    assert (cfg.staff_idle_timeout_s, cfg.staff_max_failures, cfg.staff_lockout_s) == (
        600,
        5,
        900,
    )
    (pump,) = cfg.pumps
    assert (pump.device, pump.baudrate, pump.heartbeat_timeout_s) == ("/dev/ttyUSB0", 19200, 20)
    assert pump.address == "/dev/ttyUSB0@19200"
    # Without [roles] the packaged groups (sysusers.d) hold the roles.
    assert cfg.roles["nurse"] == frozenset({"pumpd-nurse"})


def test_the_audit_spool_can_be_placed_or_switched_off() -> None:
    placed = parse('[daemon]\naudit_spool = "/mnt/spool/pumpd.spool"\n' + PUMP)
    assert placed.audit_spool == Path("/mnt/spool/pumpd.spool")
    assert parse('[daemon]\naudit_spool = "off"\n' + PUMP).audit_spool is None


def test_hash_is_of_the_exact_bytes(tmp_path: Path) -> None:
    a = tmp_path / "a.toml"
    a.write_text(PUMP)
    b = tmp_path / "b.toml"
    b.write_text(PUMP + "\n# a comment changes the file\n")
    assert load_config(a).sha256 != load_config(b).sha256
    assert load_config(a).sha256 == load_config(a).sha256


def test_relative_protocols_path_is_taken_from_the_file(tmp_path: Path) -> None:
    cfg = parse('[daemon]\nprotocols = "lib"\n' + PUMP, tmp_path / "pumpd.toml")
    assert cfg.protocols == tmp_path / "lib"


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        (
            '[[pump]]\nid = "c"\ntransport = "modbus-tcp"\naddress = "x"\nunit = 1\n',
            "pump[0].address",
            'expected host:port, got "x"',
        ),
        (
            PUMP + '[[pump]]\nid = "c2"\ntransport = "modbus-tcp"\naddress = "x"\nunit = 2\n',
            "pump[1].address",
            'expected host:port, got "x"',
        ),
        (
            '[[pump]]\nid = "c"\ntransport = "modbus-tcp"\naddress = "h:99999"\nunit = 1\n',
            "pump[0].address",
            "port must be 1..65535",
        ),
        (
            '[[pump]]\nid = "c"\ntransport = "modbus-tcp"\nunit = 1\n',
            "pump[0].address",
            "modbus-tcp needs address",
        ),
        (
            '[[pump]]\nid = "c"\ntransport = "modbus-rtu"\nunit = 1\n',
            "pump[0].device",
            "modbus-rtu needs device",
        ),
        (
            '[[pump]]\nid = "c"\ntransport = "modbus-rtu"\ndevice = "ttyUSB0"\nunit = 1\n',
            "pump[0].device",
            "absolute path",
        ),
        (
            '[[pump]]\nid = "c"\ntransport = "modbus-rtu"\ndevice = "/dev/x"\n'
            'address = "h:1"\nunit = 1\n',
            "pump[0].address",
            "only for modbus-tcp",
        ),
        (
            '[[pump]]\nid = "c"\ntransport = "modbus-tcp"\naddress = "h:1"\n'
            "baudrate = 9600\nunit = 1\n",
            "pump[0].baudrate",
            "only for transport modbus-rtu",
        ),
        (
            '[[pump]]\nid = "c"\ntransport = "modbus-ascii"\naddress = "h:1"\nunit = 1\n',
            "pump[0].transport",
            "'modbus-tcp', 'modbus-rtu'",
        ),
        (
            '[[pump]]\nid = "Chair 1"\ntransport = "modbus-tcp"\naddress = "h:1"\nunit = 1\n',
            "pump[0].id",
            "expected 1-40 of a-z 0-9",
        ),
        (
            '[[pump]]\nid = "c"\ntransport = "modbus-tcp"\naddress = "h:1"\nunit = 0\n',
            "pump[0].unit",
            "greater than or equal to 1",
        ),
        (
            '[[pump]]\nid = "c"\ntransport = "modbus-tcp"\naddress = "h:1"\nunit = "1"\n',
            "pump[0].unit",
            "valid integer",
        ),
        (
            '[[pump]]\nid = "c"\ntransport = "modbus-tcp"\naddress = "h:1"\nunit = 1\n'
            'adress = "x"\n',
            "pump[0].adress",
            "unknown key",
        ),
        (
            '[[pump]]\nid = "c"\ntransport = "modbus-tcp"\naddress = "h:1"\n',
            "pump[0].unit",
            "required key is missing",
        ),
        (PUMP + PUMP.replace("unit = 1", "unit = 2"), "pump[1].id", "already pump[0]"),
        (
            PUMP + PUMP.replace('"chair-1"', '"chair-2"'),
            "pump[1].unit",
            "unit 1 on 127.0.0.1:5020 is already pump[0]",
        ),
        ("[daemon]\n", "pump", "at least one [[pump]]"),
        ("[daemon]\nsockt = '/x'\n" + PUMP, "daemon.sockt", "unknown key"),
        ("[daemon]\nsocket = 'pumpd.sock'\n" + PUMP, "daemon.socket", "absolute path"),
        ("[daemon]\nsocket = '/" + "s" * 120 + "'\n" + PUMP, "daemon.socket", "longer than 107"),
        ("[daemon]\nsocket_group = 'Pump D'\n" + PUMP, "daemon.socket_group", "Unix group"),
        ("[daemon]\ndatabase = 'mysql://x/y'\n" + PUMP, "daemon.database", "unsupported database"),
        ("[daemon]\ndatabase = 'sqlite://'\n" + PUMP, "daemon.database", "in-memory"),
        ("[daemon]\npoll_hz = 0\n" + PUMP, "daemon.poll_hz", "greater than or equal to 1"),
        ("[daemon]\npoll_hz = 500\n" + PUMP, "daemon.poll_hz", "less than or equal to 50"),
        ("[daemon]\nsimulation = 'yes'\n" + PUMP, "daemon.simulation", "valid boolean"),
        ("[daemon]\ntime_scale = 60\n" + PUMP, "daemon.time_scale", "only with simulation = true"),
        (
            "[daemon]\ntime_scale = 0\nsimulation = true\n" + PUMP,
            "daemon.time_scale",
            "greater than 0",
        ),
        (
            "[daemon]\nlog_format = 'xml'\n" + PUMP,
            "daemon.log_format",
            "'auto', 'json' or 'console'",
        ),
        ("[roles]\nsuperuser = ['wheel']\n" + PUMP, "roles.superuser", "unknown role"),
        ("[roles]\nadmin = ['root']\n" + PUMP, "roles.admin[0]", "no implicit superuser"),
        ("[roles]\nnurse = ['*']\n" + PUMP, "roles.nurse[0]", "Unix group name"),
        ("[roles]\nnurse = 'pumpd-nurse'\n" + PUMP, "roles.nurse", "valid list"),
        ("[staff]\nmax_failures = 0\n" + PUMP, "staff.max_failures", "greater than or equal to 1"),
        ("[staff]\nlockout = 15\n" + PUMP, "staff.lockout", "unknown key"),
        (
            "[daemon]\ntime_scale = 10000\nsimulation = true\n"
            + PUMP.replace("unit = 1", "unit = 1\nheartbeat_timeout_s = 10"),
            "pump[0].heartbeat_timeout_s",
            "more than the pump's 65535",
        ),
        ("[daemon\n", "(syntax)", "Expected ']'"),
        ("[daemon]\naudit_spool = 'spool'\n" + PUMP, "daemon.audit_spool", "absolute path or"),
        ("[daemon]\naudit_spool = '/var/x/'\n" + PUMP, "daemon.audit_spool", "not of a directory"),
        ("[daemon]\naudit_spool = false\n" + PUMP, "daemon.audit_spool", "valid string"),
        (
            "[daemon]\ndatabase = 'sqlite:////srv/a.db'\naudit_spool = '/srv/a.db'\n" + PUMP,
            "daemon.audit_spool",
            "the SQLite database file itself",
        ),
        (
            "[daemon]\nsocket = '/run/p/s'\naudit_spool = '/run/p/s'\n" + PUMP,
            "daemon.audit_spool",
            "the control socket's path",
        ),
    ],
)
def test_each_refusal_names_its_key(text: str, key: str, fragment: str) -> None:
    found = problems(text)
    assert key in found, f"{key} not named; problems: {found}"
    assert fragment in found[key], found[key]


def test_every_problem_of_a_file_is_reported_together() -> None:
    found = problems(
        "[daemon]\ntime_scale = 5\nsocket = 'rel'\n"
        + '[[pump]]\nid = "c"\ntransport = "modbus-tcp"\naddress = "x"\nunit = 1\n'
    )
    assert set(found) == {"daemon.time_scale", "daemon.socket", "pump[0].address"}


def test_message_form_is_key_colon_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        parse('[[pump]]\nid = "c"\ntransport = "modbus-tcp"\naddress = "x"\nunit = 1\n')
    assert str(caught.value) == 'pump[0].address: expected host:port, got "x"'
    assert caught.value.key == "pump[0].address"


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "missing.toml")
    assert caught.value.key == "(file)"
    assert "missing.toml" in caught.value.message


# -- simulation mode ------------------------------------------------------------------

SIM = "[daemon]\nsimulation = true\ntime_scale = 60\n"


@pytest.mark.parametrize(
    "address", ["127.0.0.1:5020", "127.9.9.9:5020", "localhost:5020", "[::1]:5020"]
)
def test_simulation_accepts_loopback(address: str) -> None:
    cfg = parse(SIM + PUMP.replace("127.0.0.1:5020", address))
    assert cfg.simulation
    assert cfg.time_scale == 60


@pytest.mark.parametrize(
    "address", ["192.168.1.20:502", "10.0.0.5:5020", "pump1.clinic.lan:502", "[fe80::1]:502"]
)
def test_simulation_refuses_anything_that_could_be_a_real_pump(address: str) -> None:
    found = problems(SIM + PUMP.replace("127.0.0.1:5020", address))
    assert "simulation = true accepts only loopback" in found["pump[0].address"]


def rtu(device: str) -> str:
    return f'[[pump]]\nid = "c"\ntransport = "modbus-rtu"\ndevice = "{device}"\nunit = 1\n'


def test_simulation_accepts_a_pseudo_terminal_and_a_link_to_one(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    try:
        pts = os.ttyname(slave)
        link = tmp_path / "pump-rtu"
        link.symlink_to(pts)
        assert parse(SIM + rtu(pts)).pumps[0].device == pts
        assert parse(SIM + rtu(str(link))).pumps[0].device == str(link)
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize("device", ["/dev/ttyUSB0", "/dev/ttyS0", "/dev/null"])
def test_simulation_refuses_serial_devices(device: str) -> None:
    found = problems(SIM + rtu(device))
    assert "only pseudo-terminals" in found["pump[0].device"]


def test_simulation_refuses_a_link_to_a_real_serial_line(tmp_path: Path) -> None:
    link = tmp_path / "looks-simulated"
    link.symlink_to("/dev/ttyUSB0")
    found = problems(SIM + rtu(str(link)))
    assert "resolves to '/dev/ttyUSB0'" in found["pump[0].device"]


def test_real_hardware_mode_accepts_real_addresses() -> None:
    cfg = parse(
        PUMP.replace("127.0.0.1:5020", "192.168.1.20:502")
        + rtu("/dev/ttyUSB0").replace('"c"', '"c2"')
    )
    assert [p.id for p in cfg.pumps] == ["chair-1", "c2"]


def test_two_rates_on_one_serial_line_are_refused() -> None:
    text = rtu("/dev/ttyUSB0") + rtu("/dev/ttyUSB0").replace('"c"', '"c2"').replace(
        "unit = 1", "unit = 2\nbaudrate = 9600"
    )
    found = problems(text)
    assert "one line, one rate" in found["pump[1].baudrate"]


def test_the_audit_section_keys_the_chain_and_sets_the_head_publishing() -> None:
    default = parse(PUMP)
    assert default.audit_key_file is None
    assert (default.checkpoint_every_events, default.checkpoint_every_s) == (100, 10.0)
    cfg = parse(
        '[audit]\nkey_file = "keys/chain.key"\ncheckpoint_every_events = 50\n'
        "checkpoint_every_s = 2.5\n" + PUMP
    )
    assert cfg.audit_key_file == Path("/etc/pumpd/keys/chain.key")  # from the file's dir
    assert (cfg.checkpoint_every_events, cfg.checkpoint_every_s) == (50, 2.5)
    assert parse('[audit]\nkey_file = "/srv/k"\n' + PUMP).audit_key_file == Path("/srv/k")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[audit]\ncheckpoint_every_events = 0\n", "audit.checkpoint_every_events"),
        ("[audit]\ncheckpoint_every_s = 0\n", "audit.checkpoint_every_s"),
        ('[audit]\nkey_file = ""\n', "audit.key_file"),
        ('[audit]\nkey_file = "/etc/pumpd/"\n', "audit.key_file"),
        ('[audit]\nkeyfile = "/etc/pumpd/chain.key"\n', "audit.keyfile"),
    ],
)
def test_audit_section_refusals_name_their_key(text: str, key: str) -> None:
    assert key in problems(text + PUMP)


def test_the_clinic_timezone_is_an_iana_name_checked_at_load() -> None:
    assert parse(f'[daemon]\ntimezone = "America/Chicago"\n{PUMP}').timezone == "America/Chicago"
    # Unset: the system's own zone, by its IANA name (never an empty or made-up one).
    default = parse(PUMP).timezone
    assert default
    assert zone_of(default).key == default
    for bad in ("America/Chikago", "CST6", "", "../etc/passwd", "/usr/share/zoneinfo/UTC"):
        found = problems(f'[daemon]\ntimezone = "{bad}"\n{PUMP}')
        assert found["daemon.timezone"].startswith(f"{bad!r} is not a time zone name"), found
        assert "IANA" in found["daemon.timezone"]
