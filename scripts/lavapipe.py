#!/usr/bin/env python3
"""A software Vulkan driver (Mesa's lavapipe) recent enough to run Burn's WGPU kernels.

Why: Debian 12's lavapipe (Mesa 22.3, and 25.0 from bookworm-backports) segfaults inside
vkCreateComputePipelines on Burn 0.22's fused reduce kernels (docs/backbone.md). Mesa 26.1 from
trixie-backports compiles them. It needs trixie's glibc and LLVM, so this script unpacks the
driver with its whole dependency closure (trixie's libc included) into a private folder, and
programs run through that folder's dynamic loader:

    python3 scripts/lavapipe.py                      # fetch, verify, unpack (idempotent)
    eval "$(python3 scripts/lavapipe.py --env)"      # VK_ICD_FILENAMES, LAVAPIPE_RUN, cargo runner
    CONTINUAL_TEST_WGPU=1 cargo test -p backbone --test training   # runs on lavapipe
    $LAVAPIPE_RUN target/debug/xtask suite --device vulkan ...     # any binary the same way

Trust: the InRelease files are checked with gpgv against Debian's archive keyring, the
Packages indexes against the Release hashes, and every .deb against its index's SHA256.
Only the standard library, gpgv and dpkg-deb are used. Nothing outside --dest is written.
"""
import argparse
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request

MIRROR = "http://deb.debian.org/debian"
# Later suites override earlier ones (backports carries the newer Mesa).
SUITES = [(MIRROR, "trixie"), (MIRROR, "trixie-updates"),
          ("http://deb.debian.org/debian-security", "trixie-security"), (MIRROR, "trixie-backports")]
ROOT_PACKAGE = "mesa-vulkan-drivers"
# The oldest Mesa seen to compile Burn 0.22's kernels here (25.0.7 crashes, 26.1.6 works).
MIN_MESA = (26, 0)
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# Packages a library closure never needs (scripts, data-only or configuration packages).
SKIP = {"debconf", "perl-base", "dpkg", "install-info", "libc-bin", "base-files", "tzdata",
        "sensible-utils", "adduser", "passwd", "login", "coreutils", "bash", "dash"}


def default_dest():
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "continual-lm", "lavapipe")


def fetch(url):
    with urllib.request.urlopen(url, timeout=120) as r:
        return r.read()


def verified_release(mirror, suite, workdir):
    """The InRelease text of a suite after gpgv accepted its signature."""
    raw = fetch(f"{mirror}/dists/{suite}/InRelease")
    path = os.path.join(workdir, f"{suite}.InRelease")
    with open(path, "wb") as f:
        f.write(raw)
    out = subprocess.run(["gpgv", "--keyring", KEYRING, path], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"lavapipe.py: the signature of {mirror}/dists/{suite}/InRelease did not verify:\n{out.stderr}")
    return raw.decode()


def packages_index(mirror, suite, workdir):
    """Package name -> fields, from a suite's main/binary-amd64 index checked against InRelease."""
    release = verified_release(mirror, suite, workdir)
    name = "main/binary-amd64/Packages.xz"
    m = re.search(r"^ ([0-9a-f]{64})\s+\d+\s+" + re.escape(name) + "$", release.split("SHA256:", 1)[1], re.M)
    if not m:
        sys.exit(f"lavapipe.py: {suite}'s InRelease lists no SHA256 for {name}")
    raw = fetch(f"{mirror}/dists/{suite}/{name}")
    if hashlib.sha256(raw).hexdigest() != m.group(1):
        sys.exit(f"lavapipe.py: {mirror}/dists/{suite}/{name} does not match its SHA256 in InRelease")
    index = {}
    for block in lzma.decompress(raw).decode().split("\n\n"):
        fields = {}
        for line in block.split("\n"):
            if line and not line[0].isspace() and ": " in line:
                k, v = line.split(": ", 1)
                fields[k] = v
        if "Package" in fields:
            fields["Mirror"] = mirror
            index[fields["Package"]] = fields
    return index


def dependency_names(field):
    """Names from a Depends/Pre-Depends field: first alternative, version and arch stripped."""
    names = []
    for clause in filter(None, (c.strip() for c in field.split(","))):
        first = clause.split("|")[0].strip()
        names.append(first.split()[0].split(":")[0])
    return names


def closure(index, root):
    todo, seen = [root], {}
    while todo:
        name = todo.pop()
        if name in seen or name in SKIP:
            continue
        if name not in index:
            # Virtual or optional packages with no binary in the index are not libraries we load.
            print(f"lavapipe.py: note: {name} is not in the index, skipped", file=sys.stderr)
            continue
        fields = index[name]
        seen[name] = fields
        for key in ("Pre-Depends", "Depends"):
            todo.extend(dependency_names(fields.get(key, "")))
    return seen


def mesa_version(version):
    m = re.match(r"(?:\d+:)?(\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def install(dest):
    with tempfile.TemporaryDirectory() as work:
        index = {}
        for mirror, suite in SUITES:
            index.update(packages_index(mirror, suite, work))
        packages = closure(index, ROOT_PACKAGE)
        mesa = packages[ROOT_PACKAGE]["Version"]
        if mesa_version(mesa) < MIN_MESA:
            sys.exit(f"lavapipe.py: {ROOT_PACKAGE} {mesa} is older than {MIN_MESA}, which crashes on Burn's kernels")
        manifest = {n: f["Version"] for n, f in sorted(packages.items())}
        done = os.path.join(dest, "manifest.json")
        if os.path.exists(done):
            with open(done) as f:
                if json.load(f).get("packages") == manifest:
                    print(f"lavapipe.py: {dest} already holds Mesa {mesa}", file=sys.stderr)
                    return
        staging = dest + ".partial"
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(staging)
        for name, fields in sorted(packages.items()):
            raw = fetch(f"{fields['Mirror']}/{fields['Filename']}")
            if hashlib.sha256(raw).hexdigest() != fields["SHA256"]:
                sys.exit(f"lavapipe.py: {fields['Filename']} does not match its SHA256 in the index")
            deb = os.path.join(work, os.path.basename(fields["Filename"]))
            with open(deb, "wb") as f:
                f.write(raw)
            subprocess.run(["dpkg-deb", "-x", deb, os.path.join(staging, "root")], check=True)
            os.remove(deb)
        libdir = os.path.join(dest, "root", "usr", "lib", "x86_64-linux-gnu")
        icd = {"file_format_version": "1.0.1",
               "ICD": {"library_path": os.path.join(libdir, "libvulkan_lvp.so"), "api_version": "1.4.0"}}
        with open(os.path.join(staging, "lvp_icd.json"), "w") as f:
            json.dump(icd, f, indent=2)
        with open(os.path.join(staging, "manifest.json"), "w") as f:
            json.dump({"mesa": mesa, "suites": [s for _, s in SUITES], "packages": manifest}, f, indent=2)
        # Swap in the finished folder last, so an interrupted run never leaves a half tree behind.
        shutil.rmtree(dest, ignore_errors=True)
        os.rename(staging, dest)
        print(f"lavapipe.py: Mesa {mesa} lavapipe and {len(packages)} packages in {dest}", file=sys.stderr)


def env_lines(dest):
    libdir = os.path.join(dest, "root", "usr", "lib", "x86_64-linux-gnu")
    run = f"{os.path.join(libdir, 'ld-linux-x86-64.so.2')} --library-path {libdir}"
    return "\n".join([
        f"export VK_ICD_FILENAMES={os.path.join(dest, 'lvp_icd.json')}",
        f"export LAVAPIPE_RUN='{run}'",
        # cargo test/run start every binary through trixie's loader, so trixie's libc is the one
        # the driver links against; the binaries themselves only need an older glibc.
        f"export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER='{run}'",
    ])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dest", default=default_dest(), help="where to unpack (default: %(default)s)")
    parser.add_argument("--env", action="store_true", help="print shell exports for an installed driver")
    args = parser.parse_args()
    dest = os.path.abspath(args.dest)
    if args.env:
        if not os.path.exists(os.path.join(dest, "manifest.json")):
            sys.exit(f"lavapipe.py: nothing installed in {dest}; run without --env first")
        print(env_lines(dest))
        return
    install(dest)


if __name__ == "__main__":
    main()
