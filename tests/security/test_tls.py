"""TLS: a manager serving HTTPS with a self-signed certificate made here, an agent and the
remote CLI talking to it with `--cacert`, and what they say without it."""

from __future__ import annotations

import datetime
import ipaddress
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import WORKFLOWS, cli_env, run_cli
from security.conftest import ManagerProcess, csrf_of, free_port, wait_for

Managers = Callable[..., ManagerProcess]


def self_signed(directory: Path, name: str = "manager") -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, signed by its own key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dalsegno test manager")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture
def tls_manager(home: Path, tmp_path: Path, managers: Managers) -> tuple[ManagerProcess, Path]:
    cert, key = self_signed(tmp_path)
    manager = managers(
        home,
        WORKFLOWS,
        "--workflows",
        "agent_flows.py",
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        scheme="https",
        cacert=str(cert),
    )
    return manager, cert


def test_agents_and_the_cli_work_against_a_tls_manager(
    home: Path, tmp_path: Path, tls_manager: tuple[ManagerProcess, Path]
) -> None:
    manager, cert = tls_manager
    assert manager.url.startswith("https://")
    with pytest.raises((httpx.ConnectError, httpx.RemoteProtocolError)):  # no plain HTTP there
        httpx.get(manager.url.replace("https://", "http://") + "/healthz")
    base = ("--manager", manager.url, "--cacert", str(cert))
    made = run_cli(home, *base, "tokens", "create", "web-1", "--role", "agent", "--queue", "web")
    assert made.returncode == 0, made.stderr
    agent_log = tmp_path / "agent.log"
    with agent_log.open("w") as stderr:
        agent = subprocess.Popen(
            [sys.executable, "-m", "dalsegno", "agent", "--queue", "web",
             "--manager", manager.url, "--cacert", str(cert), "--token", made.stdout.strip(),
             "--home", str(tmp_path / "agent-home"), "--heartbeat-interval", "0.3"],
            cwd=WORKFLOWS, env=cli_env(home), stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        log = tmp_path / "runs.log"
        done = run_cli(
            home, *base, "run", "agent_flows:one", "-p", "op=step", "-p", f"log={log}", "-q"
        )
        assert done.returncode == 0, done.stderr + agent_log.read_text()
        (run,) = [json.loads(line) for line in log.read_text().splitlines()]
        assert run["key"] == "t"  # the agent ran the task, over TLS both ways
        listed = run_cli(home, *base, "agents", "list", "--json")
        assert [found["queue"] for found in json.loads(listed.stdout)] == ["web"]
    finally:
        agent.terminate()
        agent.wait(20)


def test_without_the_ca_the_cli_refuses_at_once_and_says_why(
    home: Path, tls_manager: tuple[ManagerProcess, Path]
) -> None:
    manager, _ = tls_manager
    done = run_cli(home, "--manager", manager.url, "executions", "list", timeout=30)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "over TLS" in done.stderr and "--cacert" in done.stderr, done.stderr
    missing = run_cli(
        home, "--manager", manager.url, "--cacert", "/nonexistent.pem", "agents", "list"
    )
    assert missing.returncode == 2
    assert "cannot use --cacert /nonexistent.pem" in missing.stderr


def test_an_agent_without_the_ca_does_not_get_in(
    home: Path, tmp_path: Path, tls_manager: tuple[ManagerProcess, Path]
) -> None:
    manager, _ = tls_manager
    agent_log = tmp_path / "agent.log"
    with agent_log.open("w") as stderr:
        agent = subprocess.Popen(
            [sys.executable, "-m", "dalsegno", "agent", "--queue", "web",
             "--manager", manager.url, "--token", manager.admin_token,
             "--home", str(tmp_path / "agent-home"), "--heartbeat-interval", "0.3"],
            cwd=WORKFLOWS, env=cli_env(home), stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        wait_for(lambda: "CERTIFICATE_VERIFY_FAILED" in agent_log.read_text(), 20, "the refusal")
        with manager.api() as api:
            assert api.get("/agents").json() == []  # it never got in
    finally:
        agent.terminate()
        agent.wait(20)


def test_sessions_over_tls_get_secure_cookies(tls_manager: tuple[ManagerProcess, Path]) -> None:
    manager, _ = tls_manager
    with manager.browser() as browser:
        form = browser.get("/login")
        assert "secure" in form.headers["set-cookie"].lower()
        signed = browser.post(
            "/login", data={"token": manager.admin_token, "csrf": csrf_of(form.text)}
        )
        assert signed.status_code == 303
        assert "; secure" in signed.headers["set-cookie"].lower()


def test_a_bad_tls_pair_stops_the_manager_in_one_line(home: Path, tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path, "one")
    _, other_key = self_signed(tmp_path, "other")
    cases = [
        (("--tls-cert", str(cert)), "--tls-cert and --tls-key go together"),
        (("--tls-cert", str(cert), "--tls-key", str(other_key)), "cannot use --tls-cert"),
        (("--tls-cert", str(tmp_path / "no.pem"), "--tls-key", str(other_key)), "no.pem"),
    ]
    for args, reason in cases:
        done = run_cli(home, "manager", "--bind", f"127.0.0.1:{free_port()}", *args, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and reason in done.stderr, done.stderr
