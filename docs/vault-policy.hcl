# Least-privilege Vault / OpenBao policy for provkey's vault store.
#
# Written for the defaults  mount: secret  prefix: provkey.  For another mount or prefix,
# replace "secret" and "provkey" below (every path is <mount>/<endpoint>/<prefix>/...).
#
#   bao policy write provkey docs/vault-policy.hcl        # or: vault policy write ...
#   bao token create -policy=provkey -period=24h          # a periodic token for a cron host
#
# Each key lives in two secrets, <prefix>/<key>/value (one KV version per provkey version)
# and <prefix>/<key>/state (labels, lifecycle state; written with check-and-set).
# Nothing outside <mount>/*/<prefix>/ is needed. Token renewal (auth/token/renew-self),
# lookup-self and sys/capabilities-self come from Vault's built-in "default" policy; keep it
# attached (it is unless the token was created with -no-default-policy).

# Read, create and update values and state (add, rotate, status, get, test).
path "secret/data/provkey/*" {
  capabilities = ["create", "read", "update"]
}

# Label copy and max_versions on the value secret (create/update); `provkey migrate` retires
# a moved key by deleting its metadata (delete); listing keys (list).
path "secret/metadata/provkey/*" {
  capabilities = ["create", "update", "delete", "list"]
}

# Revoke: soft-delete a version (recoverable with `kv undelete`).
path "secret/delete/provkey/*" {
  capabilities = ["update"]
}

# Revoke with destroyOnRevoke: true, and removing a value left by a writer that lost a
# check-and-set race. Drop this stanza if you never destroy (soft delete then suffices,
# and a lost race leaves an unreferenced value behind instead).
path "secret/destroy/provkey/*" {
  capabilities = ["update"]
}
