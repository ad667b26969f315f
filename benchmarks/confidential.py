"""What a confidential package adds to its first round: attestation, key release and decryption, next
to what the same package in the clear costs the runtime (reading and checking its archive in memory).

    .venv/bin/python benchmarks/confidential.py [--sizes-mb 1,100] [--repeat 5] [--keep]

Starts an orchestrator, a gateway and the owner's key broker on loopback (the broker a real process
over mutual TLS). For each size it builds a package holding that many bytes of random data (so the
archive does not compress), seals it and deposits its key. Then, `--repeat` times each:

- clear: the runtime's check of the plaintext archive (`read_entries`: every entry decompressed and
  checked, as the sandbox does before it imports a package from memory);
- confidential: the runtime's ephemeral X25519 key pair, the gateway's key request as production
  makes it (`custos.gateway.key_release.KeyRequester`: a nonce, signed evidence, the custodian's
  signed grant, the release over HTTPS), the unwrap, and `decrypt_sealed` (AES-256-GCM, the plaintext
  digest, the same `read_entries`).

The runtime's measurement is computed once per gateway process and is printed apart (`measure_s`).
Sizes over the registry's 8 MiB cap are measured with raised limits: the cap is the registry's, not
the cipher's. Last line: {"added_s_<n>mb", "clear_s_<n>mb", "confidential_s_<n>mb", "ratio_<n>mb",
"measure_s", "target_added_s_1mb", "load_1m"} (medians).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from deployment import describe_load, load_average, median, print_json_figures, work_folder

from custos.attestation.software import measure_runtime
from custos.attestation.wrap import public_key_b64, unwrap_key
from custos.audit import AuditTrail
from custos.core.clock import utcnow
from custos.core.wire.keybroker import KeyPolicy
from custos.data.synthetic import synthetic_patients
from custos.gateway.key_release import KeyRequester
from custos.gateway.policies import PolicyKeeper
from custos.gateway.trust import GatewayTrust
from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, KeyBrokerSetup, UserSetup
from custos.pki.kit import load_kit
from custos.registry import ArchiveLimits, build_archive, seal_archive
from custos.registry.sealed import decrypt_sealed
from custos.registry.verify import read_entries
from custos.sdk.keybroker import OwnerBrokerClient

TARGET_ADDED_S_1MB = 0.2
MANIFEST = """\
name = "bench-{size}mb"
version = "1.0.0"
entrypoint = "bench:run"
[outputs.result]
kind = "json"
max_bytes = 1000
"""
MODELS = [f"bench-{n}mb@>=1" for n in (1, 10, 100)]
POLICY = {"dataset": "patients", "grants": [{"orgs": ["university"], "models": MODELS, "columns": ["age"]}]}


def package(folder: Path, size_mb: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "custos-model.toml").write_text(MANIFEST.format(size=size_mb), encoding="utf-8")
    (folder / "bench.py").write_text("def run(dal, datasets, params):\n    return {}\n", encoding="utf-8")
    (folder / "weights.bin").write_bytes(os.urandom(size_mb * 1024 * 1024))
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", default="1,100")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes_mb.split(",")]
    limits = ArchiveLimits(max_archive_bytes=(max(sizes) + 8) << 20, max_entry_bytes=(max(sizes) + 8) << 20,
                           max_total_bytes=(max(sizes) + 8) << 20)  # fmt: skip
    figures: dict[str, float | int | str] = {}
    with work_folder("custos-bench-confidential-", keep=args.keep) as work:
        site = GatewaySetup(
            "site-a",
            "hospital-a",
            [DatasetSetup("patients", synthetic_patients(200, site=0, seed=1), POLICY)],
        )
        users = [UserSetup("alice", "university"), UserSetup("olga", "modelco")]
        with Cluster(work, gateways=[site], users=users, keybrokers=[KeyBrokerSetup("broker", "modelco")],
                     project="bench") as cluster:  # fmt: skip
            gateway_kit = load_kit(cluster.kit_dir("site-a"))
            (work / "bench-gateway").mkdir()
            trust = GatewayTrust(gateway_kit.root_certificate, work / "bench-gateway", utcnow)
            keeper = PolicyKeeper("site-a", "hospital-a", work / "bench-gateway", trust.check_certificate)
            keeper.offer("patients", cluster.sign_policy("site-a", "patients", POLICY), persist=False)
            keys = KeyRequester(gateway_kit, trust, keeper, AuditTrail(work / "bench-gateway" / "audit.log"))
            started = time.perf_counter()
            measurement = measure_runtime()
            figures["measure_s"] = round(time.perf_counter() - started, 4)
            keys.measurement  # noqa: B018 - computed once per gateway process, not per round
            owner = OwnerBrokerClient(cluster.broker_url("broker"), load_kit(cluster.kit_dir("olga")))
            before = load_average()
            print(describe_load(before), flush=True)
            for size in sizes:
                built = build_archive(package(work / f"pkg-{size}", size), limits)
                key_id = f"bench-{size}mb-key"
                sealed = seal_archive(built, key_id=key_id, broker_url=cluster.broker_url("broker"),
                                      measurements=[measurement])  # fmt: skip
                owner.deposit(key_id, sealed.data_key, KeyPolicy(package=built.manifest.ref,
                              ciphertext_digest=sealed.digest, plaintext_digest=built.digest,
                              measurements=[measurement]))  # fmt: skip
                clear: list[float] = []
                confidential: list[float] = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    read_entries(built.data, "bench", limits)
                    clear.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    runtime = X25519PrivateKey.generate()
                    wrapped = keys.obtain(
                        sealed.terms, sealed.digest, "patients", public_key_b64(runtime), "bench", "modelco"
                    )
                    data_key = unwrap_key(wrapped, runtime)
                    decrypt_sealed(sealed.data, data_key, name=built.manifest.name, version="1.0.0",
                                   terms=sealed.terms, limits=limits)  # fmt: skip
                    confidential.append(time.perf_counter() - t0)
                c, k = median(clear), median(confidential)
                figures |= {f"clear_s_{size}mb": round(c, 4), f"confidential_s_{size}mb": round(k, 4)}
                figures |= {f"added_s_{size}mb": round(k - c, 4), f"ratio_{size}mb": round(k / c, 2)}
                print(f"{size} MB: clear {c:.4f} s, confidential {k:.4f} s, added {k - c:.4f} s", flush=True)
            owner.close()
            after = load_average()
            print(describe_load(after), flush=True)
    figures |= {"target_added_s_1mb": TARGET_ADDED_S_1MB, "load_1m": after[0]}
    print_json_figures(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
