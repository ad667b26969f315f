"""The key broker a model owner runs (`custos keybroker start`): it holds confidential packages' data
keys, encrypted at rest, and releases one only to a runtime whose attestation satisfies the key's
policy, wrapped for that runtime's ephemeral public key. Every decision goes to its own audit trail."""
