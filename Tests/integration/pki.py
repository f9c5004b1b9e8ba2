"""A small PKI for TLS tests, made with the openssl command: a root CA and leaf certificates with
the DNS and URI SANs a test asks for. Files land in a directory the test owns."""
import subprocess
from pathlib import Path


def _run(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


class CA:
    def __init__(self, directory: Path, name: str = "root"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.cert = self.dir / f"{name}.crt"
        self.key = self.dir / f"{name}.key"
        _run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(self.key))
        _run("req", "-x509", "-new", "-key", str(self.key), "-out", str(self.cert), "-days", "30",
             "-subj", f"/O=SwiftMesh tests/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def issue(self, name: str, dns=(), uris=(), days: int = 30):
        """A leaf certificate and key signed by this CA: (cert path, key path)."""
        key = self.dir / f"{name}.key"
        csr = self.dir / f"{name}.csr"
        cert = self.dir / f"{name}.crt"
        ext = self.dir / f"{name}.ext"
        sans = [f"DNS:{d}" for d in dns] + [f"URI:{u}" for u in uris]
        ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                       "extendedKeyUsage=serverAuth,clientAuth\n"
                       + (f"subjectAltName={','.join(sans)}\n" if sans else ""))
        _run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
        _run("req", "-new", "-key", str(key), "-out", str(csr), "-subj", f"/O=SwiftMesh tests/CN={name}")
        _run("x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key), "-CAcreateserial",
             "-out", str(cert), "-days", str(days), "-extfile", str(ext))
        return cert, key
