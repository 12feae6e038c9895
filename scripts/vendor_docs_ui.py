"""Vendor the docs UI bundles (Swagger UI, ReDoc) from the npm registry into the package.

    python scripts/vendor_docs_ui.py [--swagger-ui VERSION] [--redoc VERSION]   (default: latest)

``make vendor-docs-ui`` runs it. Each package is fetched with ``npm pack`` into a temporary
folder, its tarball checked against the integrity npm reports, and only the files the pages
load (plus the licences) are copied into src/chatflow/docs_ui/assets/; VERSIONS.json records
each package's version, tarball integrity and the sha256 of every file copied
(tests/api/test_docs_ui.py checks it against the files). docs/docs-ui.md says more.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS_UI = ROOT / "src" / "chatflow" / "docs_ui"
ASSETS = DOCS_UI / "assets"
VERSIONS = DOCS_UI / "VERSIONS.json"

# The attribution in ReDoc's sidebar shows Redocly's logo from their CDN: an <img> no option
# turns off, which an offline page must not request. It becomes an empty data: URI, which fails
# to decode at once, so ReDoc drops the image as it does when the CDN is unreachable (the
# "API docs by" link stays). A newer ReDoc without these strings fails here, loudly.
_NO_IMAGE = "data:,"
_REDOC_LOGOS = (
    "https://cdn.redoc.ly/redoc/logo-mini-full.svg",
    "https://cdn.redoc.ly/redoc/logo-mini.svg",
)


@dataclass(frozen=True)
class Patch:
    """One exact string replaced in a vendored file, and why."""

    file: str
    old: str
    new: str
    why: str


@dataclass(frozen=True)
class Package:
    """An npm package and the files taken from it: package path -> name in assets/."""

    name: str
    files: dict[str, str]
    patches: tuple[Patch, ...] = field(default=())


PACKAGES = {
    "swagger-ui": Package(
        "swagger-ui-dist",
        {
            "swagger-ui-bundle.js": "swagger-ui-bundle.js",
            "swagger-ui-bundle.js.LICENSE.txt": "swagger-ui-bundle.js.LICENSE.txt",
            "swagger-ui.css": "swagger-ui.css",
            "LICENSE": "swagger-ui-dist-LICENSE.txt",
            "NOTICE": "swagger-ui-dist-NOTICE.txt",
        },
    ),
    "redoc": Package(
        "redoc",
        {
            "bundles/redoc.standalone.js": "redoc.standalone.js",
            "LICENSE": "redoc-LICENSE.txt",
        },
        tuple(
            Patch(
                "redoc.standalone.js",
                logo,
                _NO_IMAGE,
                "the sidebar's Redocly logo comes from a CDN; an empty data: URI fails at once",
            )
            for logo in _REDOC_LOGOS
        ),
    ),
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def npm_pack(spec: str, into: Path) -> dict[str, str]:
    """``npm pack spec`` into ``into``: the tarball's path, version and integrity."""
    out = subprocess.run(
        ["npm", "pack", spec, "--json", "--pack-destination", str(into)],
        check=True,
        capture_output=True,
        text=True,
        cwd=into,
    ).stdout
    packed = json.loads(out)[0]
    tarball = into / packed["filename"]
    algorithm, _, expected = packed["integrity"].partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
    if digest != expected:
        raise SystemExit(f"{spec}: the tarball does not match its integrity {packed['integrity']}")
    return {"tarball": str(tarball), "version": packed["version"], "integrity": packed["integrity"]}


def apply_patches(name: str, data: bytes, patches: tuple[Patch, ...]) -> bytes:
    """``data`` with each of its patches applied; a patch whose string is missing fails."""
    for patch in patches:
        if patch.file != name:
            continue
        old = patch.old.encode()
        if old not in data:
            raise SystemExit(f"{name}: {patch.old!r} not found; review the patch ({patch.why})")
        data = data.replace(old, patch.new.encode())
    return data


def fetch(package: Package, version: str, work: Path) -> tuple[dict[str, object], dict[str, bytes]]:
    """``package@version``'s VERSIONS.json entry and the files to write into assets/."""
    work.mkdir()
    packed = npm_pack(f"{package.name}@{version}", work)
    with tarfile.open(packed["tarball"]) as tar:
        tar.extractall(work / "unpacked", filter="data")
    files: dict[str, dict[str, str]] = {}
    contents: dict[str, bytes] = {}
    for source, target in package.files.items():
        original = (work / "unpacked" / "package" / source).read_bytes()
        data = apply_patches(target, original, package.patches)
        contents[target] = data
        files[target] = {"from": f"package/{source}", "sha256": sha256(data)}
        if data != original:
            files[target]["upstream_sha256"] = sha256(original)
    entry: dict[str, object] = {
        "package": package.name,
        "version": packed["version"],
        "integrity": packed["integrity"],
        "files": files,
        "patches": [
            {"file": p.file, "replace": p.old, "with": p.new, "why": p.why} for p in package.patches
        ],
    }
    return entry, contents


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swagger-ui", default="latest", help="swagger-ui-dist version")
    parser.add_argument("--redoc", default="latest", help="redoc version")
    args = parser.parse_args(argv)
    wanted = {"swagger-ui": args.swagger_ui, "redoc": args.redoc}
    with tempfile.TemporaryDirectory(prefix="vendor-docs-ui-") as tmp:
        fetched = [fetch(PACKAGES[key], wanted[key], Path(tmp) / key) for key in wanted]
    # Only now, with every package fetched and patched: a newer version may ship fewer files.
    previous = json.loads(VERSIONS.read_text()) if VERSIONS.exists() else {"packages": []}
    for old in previous["packages"]:
        for name in old["files"]:
            (ASSETS / name).unlink(missing_ok=True)
    ASSETS.mkdir(parents=True, exist_ok=True)
    for entry, contents in fetched:
        for name, data in contents.items():
            (ASSETS / name).write_bytes(data)
        print(f"vendored {entry['package']} {entry['version']}: {', '.join(contents)}")  # noqa: T201
    record = {
        "written_by": "scripts/vendor_docs_ui.py (make vendor-docs-ui); do not edit by hand",
        "packages": [entry for entry, _ in fetched],
    }
    VERSIONS.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
