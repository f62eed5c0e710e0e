"""Certificates made at test time, and TLS servers on loopback that present them.

Everything is generated fresh with ``cryptography`` (no key or certificate is stored in the
repository), and every server listens on a loopback address (127.0.0.1 unless told) on a free
port, in a daemon thread.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, in PEM, and the chain file a server loads."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def write_chain(self, folder: Path, name: str, *chain: Issued) -> Path:
        """A PEM file with the key, this certificate and ``chain`` (intermediates), in order."""
        path = folder / f"{name}.pem"
        path.write_bytes(self.key_pem + self.cert_pem + b"".join(c.cert_pem for c in chain))
        return path


def issue(
    common_name: str,
    *,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    issuer: Issued | None = None,
    is_ca: bool = False,
) -> Issued:
    """A certificate for ``common_name``: self-signed unless ``issuer`` signs it."""
    now = datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    signer = issuer.key if issuer else key
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
    )
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    return Issued(builder.sign(signer, hashes.SHA256()), key)


def server_context(
    chain_file: Path, *, legacy: bool = False, ciphers: str | None = None
) -> ssl.SSLContext:
    """A server context; ``legacy`` also allows TLS 1.0/1.1 and weak suites (SECLEVEL 0)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain_file)
    if legacy:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(ciphers or "ALL:eNULL:@SECLEVEL=0")
    elif ciphers:
        context.set_ciphers(ciphers)
    else:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
    return context


def legacy_tls_available() -> bool:
    """Whether this machine's OpenSSL still lets a server offer TLS 1.0 (at SECLEVEL 0)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1
            context.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        return False
    return ssl.HAS_TLSv1


class TlsServer:
    """Accepts TLS connections on a loopback address and completes the handshake, one thread each.

    Enough for a TLS scanner, which only needs handshakes; the connection is closed after
    the client's first bytes (or its close).
    """

    def __init__(self, context: ssl.SSLContext, host: str = "127.0.0.1") -> None:
        self.context = context  # read at each connection: swap it to change the server
        self.host = host
        self.listener = socket.create_server((host, 0), backlog=128)
        self.port = self.listener.getsockname()[1]
        self.handshakes = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._stopped = threading.Event()

    def __enter__(self) -> TlsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self.listener.close()

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}/"

    def _serve(self) -> None:
        self.listener.settimeout(0.1)  # wake up now and then to see whether to stop
        while not self._stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.settimeout(None)
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        connection.settimeout(10)
        with (
            contextlib.suppress(OSError),
            connection,
            self.context.wrap_socket(connection, server_side=True) as tls,
        ):
            with self._lock:
                self.handshakes += 1
            tls.recv(1024)


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield port
