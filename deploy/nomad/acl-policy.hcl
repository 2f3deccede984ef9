# The least nomad-alloc-table needs. A policy has one unique name and belongs to at most one
# job (`nomad acl policy apply -job J NAME` attaches NAME to J and detaches it from any job it
# was attached to before, whose exporter then gets 403s). So every job gets its own name, and
# tokens another:
#   nomad acl policy apply -namespace default -job vector nomad-alloc-table-vector deploy/nomad/acl-policy.hcl
#   nomad acl policy apply -namespace default -job vector-aggregator nomad-alloc-table-vector-aggregator deploy/nomad/acl-policy.hcl
#   nomad acl policy apply nomad-alloc-table deploy/nomad/acl-policy.hcl      (for tokens: systemd, by hand)
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

# Only without --node-id (or NOMAD_NODE_ID) and --alloc-dir: ask the local agent for them. The
# shipped deployments set both (the jobs from ${node.unique.id}, systemd in its env file), so
# none needs it.
# agent {
#   policy = "read"
# }
