# The aggregator of the agent → aggregator topologies: one Vector service, vector-aggregator,
# that receives what the agents of deploy/nomad/vector.nomad.hcl send over TLS (verifying each
# agent's client certificate) and holds the sinks. Run it with the same -var topology as the
# agents, from the repository root (file() paths are relative to it):
#
#   nomad job run deploy/nomad/vector-aggregator.nomad.hcl                           (agents label: vector/aggregator.yaml)
#   nomad job run -var topology=forward-agent deploy/nomad/vector-aggregator.nomad.hcl
#       (agents forward raw lines; this job also runs nomad-alloc-table --scope cluster, one
#        table of every allocation of the cluster, and labels them: vector/aggregator-cluster.yaml.
#        For Nomad's servers that is one event-stream subscriber instead of one per node.)
#   nomad job run -var topology=forward-agent -var table_feed=push deploy/nomad/vector-aggregator.nomad.hcl
#       (the same, for 10,000s of allocations: the exporter pushes each change into Vector's
#        memory table and the file, the base, is reloaded every 5 minutes instead of on every
#        change: vector/aggregator-cluster-push.yaml, docs/deploy-aggregator-cluster-table.md.)
#
# Minimum Nomad version: 1.7.0 (the oldest release this job is stated for). What it uses is
# older: ACL policies attached to a job (nomad acl policy apply -job, for forward-agent) since
# 1.4.0; the identity block and the Task API socket, unix://${NOMAD_SECRETS_DIR}/api.sock
# (inside containers too), since 1.5.0; node pools since 1.6.0; Nomad service discovery and
# nomadVar templates since 1.3.0 and 1.4.0.
#
# Prerequisites on the client that runs it:
#   - the Docker plugin allowing host-path volumes, which it refuses by default:
#       plugin "docker" { config { volumes { enabled = true } } }
#     (the constraint below keeps the job off clients without it instead of failing its tasks);
#   - /var/lib/vector-aggregator for Vector's buffers and files;
#   - forward-agent: the image, docker build -t nomad-alloc-table:0.1.0 . (or your registry,
#     -var exporter_image=...), and /var/lib/nomad-alloc-table owned by uid 65532 (the image's
#     non-root user);
#   - table_feed=push: the CNI reference plugins in the client's cni_path (/opt/cni/bin), for
#     the group's bridge network (the constraint below keeps the job off clients without them).
#
# The certificates come from Nomad Variables at this job's path, rendered into the task's
# secrets; the certificate names DNS:vector-aggregator, the name the agents connect to and
# verify (docs/deploy-aggregator-edge-labels.md):
#   nomad var put nomad/jobs/vector-aggregator ca=@ca.pem cert=@aggregator.pem key=@aggregator-key.pem
# forward-agent: attach the policy (node:read and read-job in every namespace; alloc-lifecycle
# to signal Vector) to this job under this job's own policy name before running it:
#   nomad acl policy apply -namespace default -job vector-aggregator nomad-alloc-table-vector-aggregator deploy/nomad/acl-policy.hcl

variable "topology" {
  type        = string
  default     = "agent"
  description = "agent: the agents label (vector/aggregator.yaml). forward-agent: the agents forward raw lines; this job keeps the cluster's table and labels them (vector/aggregator-cluster.yaml)."

  validation {
    condition     = contains(["agent", "forward-agent"], var.topology)
    error_message = "The topology is agent or forward-agent, as for deploy/nomad/vector.nomad.hcl."
  }
}

variable "table_feed" {
  type        = string
  default     = "file"
  description = "With topology forward-agent, how the cluster's table reaches Vector. file: each change is a new file and a reload (vector/aggregator-cluster.yaml). push: each change is pushed into Vector's memory table, the file is the base, reloaded every 5 minutes (vector/aggregator-cluster-push.yaml): for 10,000s of allocations."

  validation {
    condition     = contains(["file", "push"], var.table_feed)
    error_message = "The table feed is file or push."
  }
}

variable "vector_image" {
  type    = string
  default = "timberio/vector:0.57.0-debian"
}

variable "exporter_image" {
  type    = string
  default = "nomad-alloc-table:0.1.0"
}

locals {
  cluster_table = var.topology == "forward-agent"
  push          = local.cluster_table && var.table_feed == "push"
  # A validation block sees only its own variable (Nomad's jobspec2), so the pair is checked
  # here: Nomad evaluates every local and refuses the job when one fails, and file() of this
  # name fails with the sentence in its message.
  push_needs_forward_agent = var.table_feed == "push" && !local.cluster_table ? file("-var table_feed=push needs -var topology=forward-agent") : true
  config = local.push ? "aggregator-cluster-push.yaml" : (local.cluster_table ? "aggregator-cluster.yaml" : "aggregator.yaml")
  table  = "/var/lib/nomad-alloc-table/cluster.csv"
  # forward-agent: dump publishes the cluster's table once before Vector starts (Vector exits if
  # the file is missing); run keeps it current and signals the Vector task through Nomad.
  exporter_tasks = {
    "table-init" = {
      args    = ["dump", "--scope", "cluster", "--output", local.table]
      sidecar = false
    }
    "table" = {
      args = concat(
        [
          "run",
          "--scope", "cluster",
          "--output", local.table,
          "--reload", "nomad-task",
          "--reload-task", "vector",
          "--log-format", "json",
        ],
        # push: Vector's http_server source, on the loopback of the group's network namespace.
        local.push ? ["--memory-table-url", "http://127.0.0.1:6100/nomad-alloc-table"] : [],
      )
      sidecar = true
    }
  }
}

job "vector-aggregator" {
  type      = "service"
  node_pool = "default"

  # Host-path volumes: only on clients whose Docker plugin allows them.
  constraint {
    attribute = "${attr.driver.docker.volumes.enabled}"
    value     = "true"
  }

  # push: the bridge network needs the CNI reference plugins (bridge, firewall, host-local,
  # loopback, portmap, shipped together); Nomad fingerprints each since 1.5.0.
  dynamic "constraint" {
    for_each = local.push ? ["bridge"] : []
    content {
      attribute = "${attr.plugins.cni.version.bridge}"
      operator  = "is_set"
    }
  }

  group "aggregator" {
    count = 1

    network {
      # push: the exporter reaches Vector's http_server source at 127.0.0.1:6100. In host mode
      # each docker task has a network namespace of its own; in bridge mode the group's tasks
      # share one, which nothing outside the allocation reaches but the mapped ports (docker's
      # own `ports` are then ignored).
      mode = local.push ? "bridge" : "host"

      port "vector" {
        static = 6000
        to     = 6000
      }
      # The exporter's /metrics, /healthz and /readyz (forward-agent).
      port "metrics" {
        to = 9466
      }
    }

    # The agents find it by this name (nomadService), and connect to DNS:vector-aggregator.
    service {
      name     = "vector-aggregator"
      provider = "nomad"
      port     = "vector"

      check {
        type     = "tcp"
        interval = "15s"
        timeout  = "3s"
      }
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    dynamic "task" {
      for_each = local.cluster_table ? local.exporter_tasks : {}
      labels   = [task.key]

      content {
        driver = "docker"

        lifecycle {
          hook    = "prestart"
          sidecar = task.value.sidecar
        }

        identity {
          env = true
        }

        env {
          NOMAD_ADDR               = "unix://${NOMAD_SECRETS_DIR}/api.sock"
          NOMAD_ALLOC_TABLE_LISTEN = "0.0.0.0:9466"
        }

        config {
          image = var.exporter_image
          args  = task.value.args
          ports = task.value.sidecar ? ["metrics"] : []
          # The table's directory: a renamed table is seen through a directory mount, never a
          # file mount.
          volumes = ["/var/lib/nomad-alloc-table:/var/lib/nomad-alloc-table"]
        }

        # Peak RSS measured (BENCHMARKS.md, cluster scope) for 48,000 rows of 12,000 job
        # versions and 100,000 rows of 25,000: 40 and 68 MiB with table_feed=push; 123 and
        # 238 MiB with the file alone, measured before the memory work that mode shares in
        # part. Size it for your cluster.
        resources {
          cpu    = 300
          memory = 512
        }

        dynamic "service" {
          for_each = task.value.sidecar ? [1] : []
          content {
            name     = "nomad-alloc-table-cluster"
            provider = "nomad"
            port     = "metrics"
            tags     = ["metrics"]

            check {
              type     = "http"
              path     = "/readyz"
              interval = "30s"
              timeout  = "5s"
            }
          }
        }
      }
    }

    task "vector" {
      driver = "docker"

      config {
        image = var.vector_image
        args  = ["--config", "/local/${local.config}"]
        ports = ["vector"]
        # Certificates at the paths the aggregator configurations name; buffers and files on
        # the host; forward-agent: the cluster's table, read-only.
        volumes = concat(
          ["secrets/tls:/etc/vector/tls:ro", "/var/lib/vector-aggregator:/var/lib/vector"],
          local.cluster_table ? ["/var/lib/nomad-alloc-table:/var/lib/nomad-alloc-table:ro"] : [],
        )
      }

      # [[ ]] are the template's delimiters ({{ }} belong to Vector's own templates).
      template {
        data            = file("vector/${local.config}")
        destination     = "local/${local.config}"
        left_delimiter  = "[["
        right_delimiter = "]]"
        change_mode     = "signal"
        change_signal   = "SIGHUP"
      }

      dynamic "template" {
        for_each = { "ca.pem" = "ca", "aggregator.pem" = "cert", "aggregator-key.pem" = "key" }
        iterator = pem
        content {
          data        = "{{ with nomadVar \"nomad/jobs/vector-aggregator\" }}{{ .${pem.value} }}{{ end }}"
          destination = "secrets/tls/${pem.key}"
          perms       = "0400"
          change_mode = "restart"
        }
      }

      kill_timeout = "30s"

      resources {
        cpu    = 1000
        memory = 1024
      }
    }
  }
}
