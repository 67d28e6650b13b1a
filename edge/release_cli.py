"""``tillbox edge release ...``: the release key, and signed update bundles for the tills.

``publish`` verifies a bundle, then signs (with the region key) and keeps the
tenant's release notice, and writes it to ``--out`` or publishes it retained on
``tillbox/v1/<tenant>/region/release`` with ``--broker``.

Exit status: 0 done, 1 refused (a wrong version or hardware name, a file in the way),
2 usage, 4 a bundle whose signature does not verify or that is not a whole bundle.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.cliutil import OneLineParser, add_json, emit

if TYPE_CHECKING:
    from appliance.updates import BundleInfo


def _describe(info: BundleInfo) -> tuple[dict[str, Any], str]:
    out = info.to_json()
    lines = [
        f"bundle {info.path}: version {info.version} for {info.compatible}",
        f"signed by {info.signer or '(unknown)'}",
    ]
    lines += [f"image {i.filename} ({i.size} bytes) sha256 {i.sha256}" for i in info.images]
    return out, "\n".join(lines)


def cmd_keygen(args: argparse.Namespace) -> int:
    from edge import releases

    made = releases.keygen(Path(args.key), Path(args.cert), args.name, args.days)
    emit(
        args,
        {"key": str(made.key), "cert": str(made.cert), "key_id": made.key_id},
        f"release key {made.key} (0600, keep it offline), certificate {made.cert}\n"
        f"key id {made.key_id}: put the certificate in the image's /etc/rauc/keyring.pem",
    )
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from edge import releases

    info = releases.build(
        Path(args.rootfs),
        Path(args.out),
        version=args.version,
        compatible=args.compatible,
        cert=Path(args.cert),
        key=Path(args.key),
        bundle_format=args.format,
        description=args.description,
        build_id=args.build_id,
    )
    emit(args, *_describe(info))
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from edge import releases

    info = releases.sign(
        Path(args.bundle),
        Path(args.out),
        cert=Path(args.cert),
        key=Path(args.key),
        trusted=Path(args.trusted),
    )
    emit(args, *_describe(info))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from edge import releases

    info = releases.verify(Path(args.bundle), Path(args.keyring), args.compatible)
    emit(args, *_describe(info))
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from appliance.identifiers import check_identifier
    from edge import regionlists, releases
    from edge.cliopts import emit_kept, open_store, region_key

    check_identifier(args.tenant, "tenant")
    value = releases.notice(Path(args.bundle), Path(args.cert), args.url)
    key = region_key(args)
    store = open_store(args)
    try:
        kept = regionlists.publish_release(store, key, args.tenant, value, args.version)
    finally:
        store.close()
    emit_kept(args, kept, {"notice": value.to_json()})
    return 0


def _signing(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cert", required=True, metavar="PEM", help="the release certificate")
    p.add_argument("--key", required=True, metavar="PEM", help="the release key (0600)")


def register(cmds: argparse._SubParsersAction) -> None:
    """Add ``tillbox edge release`` and its subcommands."""
    release = cmds.add_parser("release", help="the release key and signed update bundles")
    sub = release.add_subparsers(
        dest="release_action", metavar="ACTION", parser_class=OneLineParser, required=True
    )

    p = sub.add_parser("keygen", help="create the release key (0600) and its certificate")
    p.add_argument("--key", required=True, metavar="PEM", help="private key file to create")
    p.add_argument("--cert", required=True, metavar="PEM", help="certificate file to create")
    p.add_argument("--name", default="tillbox release", help="the certificate's name (CN)")
    p.add_argument("--days", type=int, default=3650, help="validity (default 3650 days)")
    add_json(p)
    p.set_defaults(handler=cmd_keygen)

    p = sub.add_parser("build", help="build and sign an update bundle from a root file system")
    p.add_argument("--rootfs", required=True, metavar="IMG", help="the root file system (ext4)")
    p.add_argument("--version", required=True, help="MAJOR.MINOR.PATCH, e.g. 2.1.0")
    p.add_argument("--compatible", required=True, help="the hardware, e.g. tillbox-rpi4")
    p.add_argument("--out", required=True, metavar="BUNDLE", help="the .raucb file to write")
    p.add_argument("--format", choices=["verity", "plain"], default="verity", help="RAUC's")
    p.add_argument("--description", default="", help="one line shown to technicians")
    p.add_argument("--build-id", default="", help="the image build's id")
    _signing(p)
    add_json(p)
    p.set_defaults(handler=cmd_build)

    p = sub.add_parser("sign", help="re-sign a bundle (e.g. a CI build) with the release key")
    p.add_argument("bundle", help="the signed bundle to re-sign")
    p.add_argument("--trusted", required=True, metavar="PEM", help="keyring its signature has")
    p.add_argument("--out", required=True, metavar="BUNDLE", help="the .raucb file to write")
    _signing(p)
    add_json(p)
    p.set_defaults(handler=cmd_sign)

    p = sub.add_parser("verify", help="check a bundle as a till will: signature, then manifest")
    p.add_argument("bundle", help="the .raucb file")
    p.add_argument("--keyring", required=True, metavar="PEM", help="the release certificate(s)")
    p.add_argument("--compatible", help="also require this hardware name")
    add_json(p)
    p.set_defaults(handler=cmd_verify)

    from edge.cliopts import add_list_options

    p = sub.add_parser(
        "publish", help="sign and keep the tenant's 'update available' notice for a bundle"
    )
    add_list_options(p)
    p.add_argument("--bundle", required=True, metavar="BUNDLE", help="the .raucb file")
    p.add_argument("--cert", required=True, metavar="PEM", help="the release cert that signed it")
    p.add_argument(
        "--url", required=True, help="https://REGION/releases/NAME, where the tills fetch it"
    )
    p.set_defaults(handler=cmd_publish)
