# The least nomad-alloc-table needs. Apply it under two names, one for tokens and one attached
# to the job's workload identity: `nomad acl policy apply` without -namespace/-job replaces a
# same-named policy and silently detaches it from the job.
#   nomad acl policy apply nomad-alloc-table deploy/nomad/acl-policy.hcl             (for a token)
#   nomad acl policy apply -namespace default -job vector nomad-alloc-table-job \
#     deploy/nomad/acl-policy.hcl                                                   (for the job's workload identity)
# A policy attached to a job may grant node and agent rules too: Nomad compiles it like a
# token's.

# /v1/node/:id and its allocations; with --scope cluster, /v1/nodes and the Node topic.
node {
  policy = "read"
}

# The allocations of every namespace, and the event stream with namespace=*, which Nomad
# refuses unless the token can read-job in every namespace. With --watch blocking no stream is
# used: a namespace without read-job is only left out of the listing (its allocations get no
# rows), so read-job may be granted namespace by namespace.
namespace "*" {
  capabilities = ["read-job"]
}

# Only for --reload nomad-task: signal the Vector task of the job in this namespace.
namespace "default" {
  capabilities = ["read-job", "alloc-lifecycle"]
}

# Only without --node-id (or NOMAD_NODE_ID) and --alloc-dir: ask the local agent for them.
# agent {
#   policy = "read"
# }
