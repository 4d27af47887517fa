"""`make demo`: a full supervised ketamine session, as a clinic would run it, on a laptop.

It starts the real `pumpsim` (time scale 60: one real second is one simulated minute)
serving a mixed clinic (`CHAIRS`): chair-1 a GIP-MB1 pump over Modbus TCP, chair-2 a New
Era NE-1000 syringe pump (60 mL syringe, Safe mode) on a serial line (a pseudo-terminal),
chair-3 a ProMinent DULCO flex metering pump driven through the `prominent-dulcoflex`
register-map profile over Modbus RTU on another pseudo-terminal. Then the real
`pumpd` in simulation mode on a temporary SQLite database (config, socket and database in
a temporary directory), and it types the nurses' commands into real `pumpctl` processes,
printing each command and its output:

* an admin adds two staff members; nurse Ana (N001) logs in at the shared station;
* chair-1: program, the double-check by nurse Ben (N002) at the same terminal (staff id +
  PIN, the weight typed again), baseline vitals, prime with the line disconnected, start,
  a pause and a resume, a downstream occlusion cleared at the pump, acknowledged and
  continued (`pumpctl resume --reason`), vitals every ten simulated minutes, a clinical
  note, completion, the observation and the discharge checklist;
* chair-2, the syringe pump: the 100 mL bag protocol is refused for the syringe's capacity
  (exit 3); the syringe protocol `ketamine-trd-syringe` (1 mg/mL) is programmed instead; a
  motor stall (the syringe pump's only occlusion alarm) is injected through the
  simulator's control channel, pumpd stops the pump and raises the alarm, the nurse clears
  the line, acknowledges the alarm in pumpd and ends the infusion there (`pumpctl end`),
  then observes and discharges;
* chair-3, the DULCO flex (no prime over Modbus, no volume target of its own): a third
  patient on the 100 mL bag protocol, the double-check and vitals; the start without a
  prime is refused until the nurse says the line was primed by hand (`start
  --primed-by-hand`); it infuses beside the others, pumpd stops it at the programmed
  volume, and it is observed and discharged; `pumpctl pumps` lists the three pumps with
  their transports;
* chair-1: a soft-limit override approved by a second nurse;
* `pumpaudit sessions`, the timeline of chair-1's session and `pumpaudit verify`;
* chair-1's session report as a PDF (and its pages as PNG) and its FHIR R4 bundle, in a
  directory that is kept.

About three minutes. Every process it starts is stopped on exit or Ctrl-C. As
root, the role group (a throwaway `pumpd-demo-<pid>` group, unique to the run, so two demos
at once do not remove each other's) is created and removed again; as any other user the
user's own primary group is given the roles in the demo's configuration.
"""

from __future__ import annotations

import contextlib
import grp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from pumpd.demo_rig import (
    OBSERVATION_REAL_S,
    PIN_ANA,
    PIN_BEN,
    ROOT_GROUP_PREFIX,
    Demo,
    DemoFailed,
    banner,
    say,
    start_board,
)
from pumpd.demo_rig import press_alarm_key as press_alarm_key  # the e2e tests press it from here

# ---------------------------------------------------------------------- the story


def session_id_of(demo: Demo, pump: str) -> str:
    return str(demo.status(pump).get("session_id"))


def run_story(demo: Demo) -> str:
    """The whole story; returns the id of chair-1's treated session (for the records)."""
    banner("who is at the terminal, and the staff registry (admin)")
    demo.pumpctl("whoami")
    demo.pumpctl(
        "staff", "add", "N001", "--name", "Ana Silva", "--role", "nurse", "--pin-stdin",
        stdin=f"{PIN_ANA}\n", shown_stdin="echo ******",
    )  # fmt: skip
    demo.pumpctl(
        "staff", "add", "N002", "--name", "Ben Okafor", "--role", "nurse", "--pin-stdin",
        stdin=f"{PIN_BEN}\n", shown_stdin="echo ******",
    )  # fmt: skip
    demo.pumpctl("staff", "list")
    say("Ana logs in at the shared nurse station: the audit names her, not the account")
    demo.pumpctl("login", "N001", "--pin-stdin", stdin=f"{PIN_ANA}\n", shown_stdin="echo ******")
    demo.pumpctl("whoami")
    demo.pumpctl("pumps")

    banner("chair-1: program, double-check by a second nurse, baseline vitals, prime")
    demo.pumpctl(
        "program", "chair-1", "--patient", "P-0042", "--weight", "82kg",
        "--protocol", "ketamine-trd-standard", "--yes",
    )  # fmt: skip
    say("the same person may not double-check her own order:")
    demo.pumpctl("confirm", "chair-1", "--weight", "82kg", expect=3)
    say("Ben types the weight again himself and his PIN (hidden at a terminal)")
    demo.pumpctl(
        "confirm", "chair-1", "--weight", "82kg", "--witness", "N002", "--pin-stdin",
        stdin=f"{PIN_BEN}\n", shown_stdin="echo ******",
    )  # fmt: skip
    demo.pumpctl("vitals", "chair-1", "--bp", "128/82", "--hr", "74", "--spo2", "98", "--rr", "14")
    demo.pumpctl("prime", "chair-1", "--line-disconnected")
    demo.wait_for("chair-1", ["PRIMED"])
    demo.pumpctl("status", "chair-1")

    banner("chair-1: start")
    demo.pumpctl("start", "chair-1")
    demo.wait_for("chair-1", ["INFUSING"])
    treated = session_id_of(demo, "chair-1")
    demo.pumpctl("watch", "chair-1", "--once")

    banner("chair-2, a syringe pump on a serial line: a second patient, then a stall")
    say("a 100 mL bag protocol does not fit chair-2's 60 mL syringe: refused, nothing sent")
    demo.pumpctl(
        "program", "chair-2", "--patient", "P-0107", "--weight", "64kg",
        "--protocol", "ketamine-trd-standard", "--yes", expect=3,
    )  # fmt: skip
    demo.pumpctl(
        "program", "chair-2", "--patient", "P-0107", "--weight", "64kg",
        "--protocol", "ketamine-trd-syringe", "--yes",
    )  # fmt: skip
    demo.pumpctl(
        "confirm", "chair-2", "--weight", "64kg", "--witness", "N002", "--pin-stdin",
        stdin=f"{PIN_BEN}\n", shown_stdin="echo ******",
    )  # fmt: skip
    demo.pumpctl("vitals", "chair-2", "--bp", "118/76", "--hr", "70", "--spo2", "99")
    demo.pumpctl("prime", "chair-2", "--line-disconnected")
    demo.wait_for("chair-2", ["PRIMED"])
    demo.pumpctl("start", "chair-2")
    demo.wait_for("chair-2", ["INFUSING"])
    time.sleep(3)
    say("the simulator kinks chair-2's line: the syringe pump's motor stalls (A?S)")
    control = ["--control", demo.sim_control, "--address", "1"]
    demo.tool("pumpsim", "newera-fault", *control, "stall", "on", brief=True)
    demo.wait_for("chair-2", ["ALARM"])
    demo.pumpctl("alarms")
    demo.pumpctl("status", "chair-2")
    end_after_stall(demo, control)
    start_dulco(demo)

    banner("chair-1: a pause and a resume, vitals every ten (simulated) minutes")
    demo.pumpctl("vitals", "chair-1", "--bp", "130/84", "--hr", "78", "--spo2", "97")
    demo.pumpctl("pause", "chair-1", "--reason", "patient asked for a short break")
    demo.wait_for("chair-1", ["PAUSED"])
    time.sleep(1)
    demo.pumpctl("status", "chair-1")
    demo.pumpctl("resume", "chair-1")
    demo.wait_for("chair-1", ["INFUSING"])
    time.sleep(2)
    say("the patient leans on chair-1's line: a downstream occlusion")
    control = ["--control", demo.sim_control, "--unit", "1"]
    demo.tool("pumpsim", "fault", *control, "occlusion-downstream", "on", brief=True)
    demo.wait_for("chair-1", ["ALARM"])
    demo.pumpctl("alarms")
    say("acknowledging while the line is still blocked is refused:")
    demo.pumpctl("ack", "chair-1", expect=3)
    continue_after_occlusion(demo, control)
    demo.pumpctl("vitals", "chair-1", "--bp", "136/86", "--hr", "82", "--spo2", "97")
    demo.pumpctl("note", "chair-1", "Nausea; ondansetron 4 mg IV given.")
    demo.wait_for("chair-1", ["OBSERVATION"], vitals_every_s=9)
    demo.pumpctl("status", "chair-1")

    banner("observation and discharge (30 simulated minutes)")
    demo.pumpctl("vitals", "chair-1", "--bp", "122/78", "--hr", "72", "--spo2", "98")
    demo.pumpctl("checklist", "chair-1")
    say("discharge before the observation time is over is refused:")
    demo.pumpctl("discharge", "chair-1", "--confirm-all", expect=3)
    demo.wait_for("chair-2", ["OBSERVATION"])
    wait_for_discharge(demo, "chair-2")
    demo.pumpctl("discharge", "chair-2", "--confirm-all")
    demo.wait_for("chair-3", ["OBSERVATION"])
    wait_for_discharge(demo, "chair-3")
    demo.pumpctl("discharge", "chair-3", "--confirm-all")
    wait_for_discharge(demo, "chair-1")
    demo.pumpctl("discharge", "chair-1", "--confirm-all")
    override_approved_by_second_nurse(demo)
    demo.pumpctl("logout")
    return treated


def start_dulco(demo: Demo) -> None:
    """chair-3, a metering pump driven through its register map: it cannot prime over
    Modbus and holds no volume target, so the line is primed by hand (the kernel refuses
    the start until the nurse says so) and pumpd stops it at the programmed volume."""
    banner("chair-3, a DULCO flex over Modbus RTU: a third patient, primed by hand")
    say("the three kinds side by side: each with its own transport and line")
    demo.pumpctl("pumps")
    demo.pumpctl(
        "program", "chair-3", "--patient", "P-0233", "--weight", "70kg",
        "--protocol", "ketamine-trd-standard", "--yes",
    )  # fmt: skip
    demo.pumpctl(
        "confirm", "chair-3", "--weight", "70kg", "--witness", "N002", "--pin-stdin",
        stdin=f"{PIN_BEN}\n", shown_stdin="echo ******",
    )  # fmt: skip
    demo.pumpctl("vitals", "chair-3", "--bp", "126/80", "--hr", "68", "--spo2", "98")
    say("this pump cannot prime over its bus: a start without a prime is refused")
    demo.pumpctl("start", "chair-3", expect=3)
    say("the nurse primes the line by hand at the bag and says so at the start")
    demo.pumpctl("start", "chair-3", "--primed-by-hand")
    demo.wait_for("chair-3", ["INFUSING"])
    demo.pumpctl("status", "chair-3")


def end_after_stall(demo: Demo, control: list[str]) -> None:
    """chair-2's kinked line is straightened and the alarm acknowledged in pumpd; the
    nurse ends the infusion there and the observation begins.

    A syringe pump knows of a blockage only while its motor pushes: once pumpd has
    stopped it, it shows no alarm of its own (a line still blocked would stall again at
    once); the alarm stays in the session until a nurse acknowledges it. Continuing is not
    shown: the remaining volume must be one the pump holds exactly (4 digits), and pumpd
    never rounds it silently (docs/driver.md)."""
    say("the nurse straightens the line at the pump and acknowledges the alarm")
    demo.tool("pumpsim", "newera-fault", *control, "stall", "off", brief=True)
    demo.pumpctl("ack", "chair-2", "--note", "kinked line straightened at the pump")
    demo.pumpctl("end", "chair-2", "--reason", "line stalled; not continued today, doctor informed")
    demo.pumpctl("status", "chair-2")


def continue_after_occlusion(demo: Demo, control: list[str]) -> None:
    """chair-1's kinked line is straightened, the pump's own alarm key pressed, the alarm
    acknowledged in pumpd, and the same session continued (the kernel decides: a cleared
    mechanical alarm, the remaining volume from the independent account, the interruption
    within the pause limit, fresh vitals, the pump idle); it then runs to completion."""
    say("the nurse straightens the line; the pump keeps its alarm until its own key is pressed")
    demo.tool("pumpsim", "fault", *control, "occlusion-downstream", "off", brief=True)
    print("\n# at chair-1's pump: the nurse presses the alarm key", flush=True)
    demo.tool("pumpsim", "press-alarm-key", *control, brief=True)
    demo.pumpctl("ack", "chair-1", "--note", "kinked line straightened at the pump")
    say("continuing needs fresh vitals and a reason; the kernel decides")
    demo.pumpctl("vitals", "chair-1", "--bp", "120/78", "--hr", "72", "--spo2", "98")
    demo.pumpctl("resume", "chair-1", "--reason", "kinked line straightened, patient well")
    demo.wait_for("chair-1", ["INFUSING"])
    demo.pumpctl("status", "chair-1")


def override_approved_by_second_nurse(demo: Demo) -> None:
    """A 140 kg patient at the escalation protocol's default dose: Ana gives the reason,
    Ben approves each soft verdict (value and limit shown) as part of his double-check."""
    banner("chair-1: a soft-limit override, approved by a second nurse")
    demo.pumpctl(
        "program", "chair-1", "--patient", "P-0131", "--weight", "140kg",
        "--protocol", "ketamine-trd-escalation", "--yes",
        "--override-reason", "140 kg; default escalation dose confirmed by Dr Rao",
    )  # fmt: skip
    say("a double-check that does not approve the override is refused and names it:")
    demo.pumpctl(
        "confirm", "chair-1", "--weight", "140kg", "--witness", "N002", "--pin-stdin",
        stdin=f"{PIN_BEN}\n", shown_stdin="echo ******", expect=3,
    )  # fmt: skip
    say("Ben approves exactly what is listed, with his double-check")
    demo.pumpctl(
        "confirm", "chair-1", "--weight", "140kg", "--approve-override",
        "--witness", "N002", "--pin-stdin", stdin=f"{PIN_BEN}\n", shown_stdin="echo ******",
    )  # fmt: skip
    demo.tool(
        "pumpaudit",
        "--database",
        demo.database,
        "events",
        "--type",
        "override.granted",
        width=180,
    )
    demo.pumpctl("abort", "chair-1", "--reason", "demo: the treatment is given another day")


def wait_for_discharge(demo: Demo, pump: str) -> None:
    """Sleep until the protocol's observation time (30 simulated min) has passed for `pump`."""
    began = demo.observation_began[pump]
    remaining = began + OBSERVATION_REAL_S - time.monotonic()
    if remaining > 0:
        say(f"waiting {remaining:.0f} s (real) for {pump}'s observation time to pass")
        time.sleep(remaining)
    demo.pumpctl("vitals", pump, "--bp", "120/78", "--hr", "70", "--spo2", "98")


def show_audit(demo: Demo, session_id: str) -> None:
    banner("the audit log")
    demo.tool("pumpaudit", "--database", demo.database, "sessions")
    demo.tool("pumpaudit", "--database", demo.database, "show", session_id, width=180)
    demo.tool("pumpaudit", "--database", demo.database, "verify", "--key-file", str(demo.key_file))


def write_session_records(demo: Demo, session_id: str) -> None:
    """Chair-1's session report (PDF) and its FHIR R4 bundle, kept after the demo ends."""
    banner("chair-1's session report and its FHIR record")
    keep = Path(tempfile.mkdtemp(prefix="pumpd-demo-records-"))
    pdf, bundle = keep / f"{session_id}.pdf", keep / f"{session_id}.fhir.json"
    key = ["--key-file", str(demo.key_file)]
    report = ["report", session_id, "--pdf", str(pdf), "--png", str(keep / "pages"), *key]
    demo.tool("pumpaudit", "--database", demo.database, *report)
    demo.tool(
        "pumpaudit", "--database", demo.database, "fhir", session_id, "--out", str(bundle), *key
    )
    print(f"\nThe report is {pdf} (its pages as PNG in {keep / 'pages'})", flush=True)
    print(f"The FHIR bundle is {bundle}", flush=True)


def verify_against_published_heads(demo: Demo) -> None:
    """The chain against the heads pumpd published in its log (journald's stand-in here):
    a cut tail, a rewound chain or a forged head line would be named (docs/audit.md,
    "Published heads")."""
    banner("the audit chain against the heads pumpd published in its log")
    log = str(demo.workdir / "pumpd.log")
    demo.tool(
        "pumpaudit",
        "--database",
        demo.database,
        "verify",
        "--key-file",
        str(demo.key_file),
        "--checkpoints",
        log,
    )


@contextlib.contextmanager
def role_group() -> Iterator[str]:
    """The Unix group that holds the demo's roles.

    pumpd grants no role to root's own groups (no implicit superuser), so as root a
    throwaway group with root as its member is created, joined by this process (its
    children, the pumpctl processes, inherit it) and removed at the end.
    """
    if os.geteuid() != 0:
        yield grp.getgrgid(os.getgid()).gr_name
        return
    # One group per run (this process's id): a second demo at the same time must not
    # remove the first one's group, and so its roles, when it cleans up.
    name = f"{ROOT_GROUP_PREFIX}-{os.getpid()}"
    subprocess.run(["groupdel", name], capture_output=True, check=False)  # a dead run's
    subprocess.run(["groupadd", "--users", "root", name], check=True)
    before = os.getgroups()
    try:
        os.setgroups([*before, grp.getgrnam(name).gr_gid])
        yield name
    finally:
        os.setgroups(before)
        subprocess.run(["groupdel", name], capture_output=True, check=False)


def main() -> int:
    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    workdir = Path(tempfile.mkdtemp(prefix="pumpd-demo-"))
    code = 0
    try:
        with role_group() as group:
            demo = Demo(workdir=workdir, group=group)
            try:
                banner("the simulator and the daemon (simulation mode, time x60)")
                demo.start_simulator()
                config = demo.write_config()
                print(f"\n{config}:\n" + config.read_text(encoding="utf-8"))
                start_board(demo, config)
                demo.start_daemon(config)
                session = run_story(demo)
            finally:
                demo.stop_all()
            show_audit(demo, session)
            write_session_records(demo, session)

            verify_against_published_heads(demo)
            print("\nThe demo is over: every command above went through pumpd's control socket.")
    except KeyboardInterrupt:
        print("\ninterrupted; everything the demo started is stopped.")
        code = 130
    except DemoFailed as exc:
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        for name in ("pumpd.log",):
            path = workdir / name
            if path.exists():
                print(f"--- last lines of {name}", file=sys.stderr)
                tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
                print("\n".join(tail), file=sys.stderr)
        code = 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
