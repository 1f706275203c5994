"""Throwaway X.509 material for the TLS tests, made with the ``openssl`` command line.

One CA signs a server certificate for ``127.0.0.1``/``localhost`` and a client certificate; a
second, unrelated CA stands for "a CA the client does not trust".
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.services import missing_service

__all__ = ["Certificates", "make_certificates"]


@dataclass(frozen=True, slots=True)
class Certificates:
    """Paths of the PEM files in one folder."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    #: A self-signed CA that signed none of the above.
    other_ca: Path


def make_certificates(folder: Path, *, client_cn: str = "foresight") -> Certificates:
    """A CA, a server certificate (SAN 127.0.0.1, localhost), a client certificate and a stray CA."""
    exe = shutil.which("openssl")
    if exe is None:
        missing_service("openssl")
    folder.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        done = subprocess.run([exe, *args], cwd=folder, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, f"openssl {' '.join(args)}: {done.stderr}"

    for name in ("ca", "other-ca"):
        run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", f"/CN=Foresight test {name}", "-keyout", f"{name}.key", "-out", f"{name}.crt")
    for name, cn, ext in (("server", "127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
                          ("client", client_cn, "extendedKeyUsage=clientAuth")):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={cn}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr")
        (folder / f"{name}.ext").write_text(ext + "\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt")
    return Certificates(ca=folder / "ca.crt", server_cert=folder / "server.crt", server_key=folder / "server.key",
                        client_cert=folder / "client.crt", client_key=folder / "client.key",
                        other_ca=folder / "other-ca.crt")
