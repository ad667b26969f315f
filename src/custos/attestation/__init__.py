"""Attestation: what a runtime proves about itself to a key broker, and the key wrapped back to it.

`wrap` seals a data key for a runtime's ephemeral X25519 public key; `software` is the gateway's
signed evidence about its measured runtime; `verifier` is the interface both kinds of evidence
(software, AWS Nitro) are checked through.
"""
