"""The audit trail's defences beyond the hash chain: signed checkpoints and the checks that use them."""
