"""mTLS and certificate-CN access control between recorderd and brain nodes, on loopback.

Certificates are made here with ``cryptography``; the Zenoh configs are the shipped examples
(config/zenoh-acl-recorder.json5, config/zenoh-mtls-node.json5) with the certificate
directory and the port replaced.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from analysis.reader import SessionReader
from brain_nodes.modules import simulate
from tests.helpers import free_port
from tests.processes import brain_node, recorderd, statistics, stop, wait_for

CONFIG = Path(__file__).resolve().parent.parent / "config"
CERT_DIR = "/etc/recorderd/tls/"
EXAMPLE_PORT = ":7447"
STEPS = 200
SEED = 3


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _builder(
    subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


class CA:
    """A certificate authority writing ``<name>.pem`` / ``<name>-key.pem`` into a directory."""

    def __init__(self, directory: Path, cn: str, filename: str) -> None:
        self.dir = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            _builder(cn, _name(cn), self.key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        (directory / f"{filename}.pem").write_bytes(
            self.cert.public_bytes(serialization.Encoding.PEM)
        )

    def issue(self, filename: str, cn: str, *, server: bool) -> None:
        """Sign a server (SAN localhost, 127.0.0.1) or client certificate with CN ``cn``."""
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            _builder(cn, self.cert.subject, key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if server:
            san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        (self.dir / f"{filename}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, self.dir / f"{filename}-key.pem")


def make_certificates(directory: Path) -> None:
    """CA, recorder server cert, client certs "brain-node" and "intruder" (same CA), and a
    client cert with the authorised CN "brain-node" signed by an untrusted CA ("rogue")."""
    directory.mkdir()
    ca = CA(directory, "recorderd test CA", "ca")
    ca.issue("recorder", "recorder", server=True)
    ca.issue("brain-node", "brain-node", server=False)
    ca.issue("intruder", "intruder", server=False)
    rogue = CA(directory, "rogue CA", "rogue-ca")
    rogue.issue("rogue", "brain-node", server=False)


def derived_config(example: str, out: Path, certs: Path, port: int, client: str = "") -> Path:
    """The example config ``example`` with the test's certificate directory and port."""
    text = (CONFIG / example).read_text()
    assert CERT_DIR in text and EXAMPLE_PORT in text
    text = text.replace(CERT_DIR, f"{certs}/").replace(EXAMPLE_PORT, f":{port}")
    if client:
        text = text.replace("/brain-node.pem", f"/{client}.pem")
        text = text.replace("/brain-node-key.pem", f"/{client}-key.pem")
    out.write_text(text)
    return out


def run_node(
    tmp_path: Path, node_id: str, endpoint: str, wait: float, *extra: str
) -> subprocess.Popen[bytes]:
    return brain_node(
        "--node-id",
        node_id,
        "--module-type",
        "pfc",
        "--seed",
        str(SEED),
        "--steps",
        str(STEPS),
        "--speed",
        "0",
        "--wait-subscribers",
        str(wait),
        "--flush-timeout",
        "3",
        "--connect",
        endpoint,
        "--summary-json",
        str(tmp_path / f"{node_id}.json"),
        *extra,
    )


def run_session(
    tmp_path: Path, recorder_example: str, clients: dict[str, str]
) -> tuple[dict[str, dict[str, Any]], dict[str, Any], Path, str]:
    """Start recorderd with ``recorder_example``, run one node per ``clients`` entry
    (node id -> client certificate name, or "" for plain TCP without TLS), stop the recorder.

    Return the nodes' summaries, the recorder's statistics, the session dir and its log.
    Nodes expected to be recorded have ids starting with "good"; the run waits until the
    recorder has received everything they published.
    """
    certs = tmp_path / "tls"
    make_certificates(certs)
    port = free_port()
    rec_cfg = derived_config(recorder_example, tmp_path / "rec.json5", certs, port)
    session = tmp_path / "rec" / "secure"
    args = ["--session", "secure", "--recording-dir", str(tmp_path / "rec")]
    args += ["--zenoh-config", str(rec_cfg), "--listen", f"tls/127.0.0.1:{port}"]
    args += ["--flush-interval", "0.2"]
    with recorderd(tmp_path, *args) as rec:
        nodes = {}
        for node_id, client in clients.items():
            if client:
                out = tmp_path / f"node-{node_id}.json5"
                cfg = derived_config("zenoh-mtls-node.json5", out, certs, port, client)
                extra = ["--zenoh-config", str(cfg)]
                endpoint = f"tls/localhost:{port}"
            else:
                extra, endpoint = [], f"tcp/127.0.0.1:{port}"
            # a node that cannot reach the recorder waits the whole time: keep that short
            wait = 10 if client in ("brain-node", "intruder") else 3
            nodes[node_id] = run_node(tmp_path, node_id, endpoint, wait, *extra)
        codes = {node_id: proc.wait(timeout=30) for node_id, proc in nodes.items()}
        assert codes == dict.fromkeys(nodes, 0)
        summaries = {n: json.loads((tmp_path / f"{n}.json").read_text()) for n in nodes}
        published = sum(
            s["messages"]
            for n, summary in summaries.items()
            if n.startswith("good")
            for s in summary["streams"].values()
            if s["kind"] in ("spikes", "control")
        )
        wait_for(
            lambda: statistics(session).get("totals", {}).get("received", 0) >= published,
            15,
            f"{published} messages received from the authorised nodes",
        )
        time.sleep(0.5)  # room for anything else that might still arrive
        assert stop(rec) == 0
    return summaries, statistics(session), session, (tmp_path / "recorderd.log").read_text()


def assert_recorded_completely(
    r: SessionReader, stats: dict[str, Any], node_id: str, summary: dict[str, Any]
) -> None:
    """Every spikes frame of ``node_id`` (seq 0..STEPS-1 per layer) and every spike."""
    expected = simulate("pfc", STEPS, seed=SEED)
    assert r.layers(node_id) == list(expected)
    for layer in expected:
        pub = summary["streams"][f"brain/{node_id}/spikes/{layer}"]
        assert (
            r.frames(node_id, layer).seq.tolist()
            == list(range(STEPS))
            == list(range(pub["messages"]))
        )
        assert r.spikes(node_id, layer).neuron_ids.size == pub["spikes"]
        assert stats["streams"][f"{node_id}/spikes/{layer}"]["written"] == STEPS


def test_acl_records_only_the_authorised_certificate_cn(tmp_path: Path) -> None:
    t0 = time.monotonic()
    clients = {
        "good-0": "brain-node",  # CA-signed, CN "brain-node": authorised by the ACL
        "bad-0": "intruder",  # CA-signed, CN "intruder": admitted by mTLS, denied by the ACL
        "rogue-0": "rogue",  # CN "brain-node" from an untrusted CA: rejected by mTLS
        "plain-0": "",  # plain TCP to the TLS port: no TLS handshake, no link
    }
    summaries, stats, session, log = run_session(tmp_path, "zenoh-acl-recorder.json5", clients)

    # the recorder answered the authorised node's flush barrier, nobody else's
    flushes = {n: s["flush_confirmations"] for n, s in summaries.items()}
    print("flush confirmations:", flushes)
    assert flushes == {"good-0": 1, "bad-0": 0, "rogue-0": 0, "plain-0": 0}
    # the intruder saw the recorder's subscriber and published everything ...
    bad = [s for s in summaries["bad-0"]["streams"].values() if s["kind"] == "spikes"]
    assert len(bad) == 3 and all(s["messages"] == STEPS for s in bad)
    # ... but only the authorised node reached the recording
    good = summaries["good-0"]["streams"]
    assert set(stats["streams"]) == {
        key.removeprefix("brain/") for key, s in good.items() if s["kind"] in ("spikes", "control")
    }
    assert stats["totals"]["received"] == sum(
        s["messages"] for s in good.values() if s["kind"] in ("spikes", "control")
    )
    assert stats["rejected"] == {}
    with SessionReader(session) as r:
        assert r.nodes() == ["good-0"]
        assert_recorded_completely(r, stats, "good-0", summaries["good-0"])
    # not even its liveliness token got through
    assert [line for line in log.splitlines() if "joined" in line] == [
        line for line in log.splitlines() if "node good-0 joined" in line
    ]
    assert "node good-0 joined" in log
    print(
        f"ACL: good-0 recorded (3 layers x {STEPS} frames), others not: "
        f"{time.monotonic() - t0:.1f} s"
    )


def test_mtls_without_acl_admits_every_certificate_of_the_ca(tmp_path: Path) -> None:
    """The control: with mTLS alone, "intruder" is recorded, so the ACL is what stops it."""
    t0 = time.monotonic()
    clients = {"good-0": "brain-node", "good-intruder": "intruder", "rogue-0": "rogue"}
    summaries, stats, session, _ = run_session(tmp_path, "zenoh-mtls-recorder.json5", clients)
    flushes = {n: s["flush_confirmations"] for n, s in summaries.items()}
    assert flushes == {"good-0": 1, "good-intruder": 1, "rogue-0": 0}
    with SessionReader(session) as r:
        assert r.nodes() == ["good-0", "good-intruder"]
        for node_id in ("good-0", "good-intruder"):
            assert_recorded_completely(r, stats, node_id, summaries[node_id])
    print(
        f"mTLS only: both CA-signed certificates recorded, rogue CA not: "
        f"{time.monotonic() - t0:.1f} s"
    )
