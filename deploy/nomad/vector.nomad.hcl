# The node side of every topology: on each client, Vector over the Nomad task logs and (where
# the labels are added on the node) nomad-alloc-table keeping the node's table. One file, the
# topology and the drivers chosen with -var; run it from the repository root (file() paths are
# relative to it):
#
#   nomad job run deploy/nomad/vector.nomad.hcl                                (node-local)
#   nomad job run -var topology=agent deploy/nomad/vector.nomad.hcl            (labels on the node, sinks at the aggregator)
#   nomad job run -var topology=forward-agent deploy/nomad/vector.nomad.hcl    (raw lines, labels at the aggregator)
#   ... -var exporter=docker ...   (the exporter from its image instead of /usr/bin)
#   ... -var vector=raw_exec ...   (node-local: Vector from /usr/bin/vector instead of its image;
#                                   agents always run it in Docker, see the variable)
#
# Minimum Nomad version: 1.7.0 (the oldest release this job is stated for). What it uses is
# older: ACL policies attached to a job (nomad acl policy apply -job) since 1.4.0; the identity
# block and the Task API socket, unix://${NOMAD_SECRETS_DIR}/api.sock (inside containers too),
# since 1.5.0; node pools since 1.6.0; Nomad service discovery and nomadVar templates since
# 1.3.0 and 1.4.0.
#
# Prerequisites on each client:
#   - Docker tasks (vector=docker, the default; exporter=docker) mount host paths, which the
#     Docker plugin refuses by default: its client config needs
#       plugin "docker" { config { volumes { enabled = true } } }
#     (the constraint below keeps the job off clients without it instead of failing its tasks);
#   - exporter=raw_exec (the default) or vector=raw_exec: the raw_exec driver enabled, and
#     /usr/bin/nomad-alloc-table (the .deb or the release binary) or /usr/bin/vector installed;
#   - exporter=docker: the image, docker build -t nomad-alloc-table:0.1.0 . (or your registry,
#     -var exporter_image=...), /var/lib/nomad-alloc-table owned by uid 65532 (the image's
#     non-root user) and Nomad's alloc dir listable by it:
#       setfacl -m u:65532:rx /opt/nomad/data/alloc   (Nomad makes it 0711);
#   - directories /var/lib/nomad-alloc-table (the table) and /var/lib/vector (checkpoints,
#     buffers);
#   - the alloc dir at /opt/nomad/data/alloc: else -var alloc_dir=... (the exporter, the mounts
#     and Vector's file source all follow it).
#
# Where the labels are added on the node (node-local, agent), the exporter's token comes from
# workload identity: attach the policy to this job first, under this job's own policy name (a
# policy belongs to one job: applying the same name with another -job moves it there):
#   nomad acl policy apply -namespace default -job vector nomad-alloc-table-vector deploy/nomad/acl-policy.hcl
# forward-agent runs no exporter and needs no policy.
#
# Agents (agent, forward-agent) send to the Nomad service vector-aggregator
# (deploy/nomad/vector-aggregator.nomad.hcl, in the same namespace: a workload may read the
# services of its own namespace) over TLS. Their certificates come from Nomad Variables at this
# job's path, which its tasks may read:
#   nomad var put nomad/jobs/vector ca=@ca.pem cert=@agent.pem key=@agent-key.pem
# (a client certificate from the CA that signed the aggregator's; docs/deploy-aggregator-edge-labels.md).

variable "topology" {
  type        = string
  default     = "node-local"
  description = "node-local: table, labels and sinks on each node (vector/vector.yaml). agent: table and labels on each node, lines to the aggregator (vector/agent.yaml). forward-agent: no table on the nodes, raw lines to the aggregator that labels them (vector/agent-forward.yaml)."

  validation {
    condition     = contains(["node-local", "agent", "forward-agent"], var.topology)
    error_message = "The topology is node-local, agent or forward-agent."
  }
}

variable "exporter" {
  type        = string
  default     = "raw_exec"
  description = "How nomad-alloc-table runs: raw_exec (/usr/bin/nomad-alloc-table) or docker (its image)."

  validation {
    condition     = contains(["raw_exec", "docker"], var.exporter)
    error_message = "The exporter runs under raw_exec or docker."
  }
}

variable "vector" {
  type        = string
  default     = "docker"
  description = "How Vector runs in the node-local topology: docker (its image) or raw_exec (/usr/bin/vector). Agents always run it in Docker: their certificate check needs the name vector-aggregator to resolve to the aggregator, which Nomad can give a container (extra_hosts) but not a host process."

  validation {
    condition     = contains(["docker", "raw_exec"], var.vector)
    error_message = "Vector runs under docker or raw_exec."
  }
}

variable "alloc_dir" {
  type        = string
  default     = "/opt/nomad/data/alloc"
  description = "The clients' alloc dir (<data_dir>/alloc): the exporter's --alloc-dir, the mounts, and Vector's file source (its configuration is rendered with it)."
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
  table = "/var/lib/nomad-alloc-table/allocs.csv"
  # Whether the node keeps a table (and runs the exporter), and whether Vector sends to the
  # aggregator.
  labels_on_node = var.topology != "forward-agent"
  agent          = var.topology != "node-local"
  # The Vector configuration of each topology, files of vector/ rendered into local/.
  vector_configs = {
    "node-local"    = ["task-logs.yaml", "labels.yaml", "enrichment-table.yaml", "vector.yaml"]
    "agent"         = ["task-logs.yaml", "labels.yaml", "enrichment-table.yaml", "agent.yaml"]
    "forward-agent" = ["task-logs.yaml", "agent-forward.yaml"]
  }[var.topology]
  # The exporter's two tasks: dump publishes the table once before Vector starts (Vector exits
  # if the file is missing); run keeps it current and signals the Vector task through Nomad
  # after each change (Vector may be in another PID namespace; Nomad signals only a running
  # task).
  exporter_tasks = {
    "table-init" = {
      args    = ["dump", "--output", local.table]
      sidecar = false
      cpu     = 50
      memory  = 32
    }
    "table" = {
      args = [
        "run",
        "--output", local.table,
        "--alloc-dir", var.alloc_dir,
        "--reload", "nomad-task",
        "--reload-task", "vector",
        "--log-format", "json",
      ]
      sidecar = true
      cpu     = 100
      memory  = 64
    }
  }
  vector_driver         = local.agent ? "docker" : var.vector
  docker_volumes_needed = local.vector_driver == "docker" || (local.labels_on_node && var.exporter == "docker")
}

job "vector" {
  type      = "system"
  node_pool = "all"

  # Host-path volumes of Docker tasks: only on clients whose Docker plugin allows them.
  dynamic "constraint" {
    for_each = local.docker_volumes_needed ? [1] : []
    content {
      attribute = "${attr.driver.docker.volumes.enabled}"
      value     = "true"
    }
  }

  group "logs" {
    # The exporter's /metrics, /healthz and /readyz: the node's address under raw_exec, the
    # container's 9466 under docker.
    dynamic "network" {
      for_each = local.labels_on_node ? [1] : []
      content {
        port "metrics" {
          to = var.exporter == "docker" ? 9466 : 0
        }
      }
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    dynamic "task" {
      for_each = local.labels_on_node && var.exporter == "raw_exec" ? local.exporter_tasks : {}
      labels   = [task.key]

      content {
        driver = "raw_exec"

        lifecycle {
          hook    = "prestart"
          sidecar = task.value.sidecar
        }

        identity {
          env = true
        }

        env {
          NOMAD_ADDR               = "unix://${NOMAD_SECRETS_DIR}/api.sock"
          NOMAD_NODE_ID            = "${node.unique.id}"
          NOMAD_ALLOC_TABLE_LISTEN = "${NOMAD_ADDR_metrics}"
        }

        config {
          command = "/usr/bin/nomad-alloc-table"
          args    = task.value.args
        }

        resources {
          cpu    = task.value.cpu
          memory = task.value.memory
        }

        # /metrics, /healthz and /readyz of run; Nomad checks readiness.
        dynamic "service" {
          for_each = task.value.sidecar ? [1] : []
          content {
            name     = "nomad-alloc-table"
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

    dynamic "task" {
      for_each = local.labels_on_node && var.exporter == "docker" ? local.exporter_tasks : {}
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
          NOMAD_NODE_ID            = "${node.unique.id}"
          NOMAD_ALLOC_TABLE_LISTEN = "0.0.0.0:9466"
        }

        config {
          image = var.exporter_image
          args  = task.value.args
          ports = task.value.sidecar ? ["metrics"] : []
          # The alloc dir read-only (only its entries are watched), the table's directory
          # writable: a renamed table is seen through a directory mount, never a file mount.
          volumes = [
            "${var.alloc_dir}:${var.alloc_dir}:ro",
            "/var/lib/nomad-alloc-table:/var/lib/nomad-alloc-table",
          ]
        }

        resources {
          cpu    = task.value.cpu
          memory = task.value.memory
        }

        dynamic "service" {
          for_each = task.value.sidecar ? [1] : []
          content {
            name     = "nomad-alloc-table"
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

    dynamic "task" {
      for_each = local.vector_driver == "docker" ? ["vector"] : []
      labels   = [task.value]

      content {
        driver = "docker"

        config {
          image = var.vector_image
          args  = flatten([for c in local.vector_configs : ["--config", "/local/${c}"]])
          # The same paths inside as outside, so that the shipped configuration needs no edit.
          # Directories, not files: an atomically replaced table is seen through a directory
          # mount. The whole alloc dir is mounted read-only: every task's secrets/ lies below
          # it, readable by Vector's container.
          volumes = concat(
            ["${var.alloc_dir}:${var.alloc_dir}:ro", "/var/lib/vector:/var/lib/vector"],
            local.labels_on_node ? ["/var/lib/nomad-alloc-table:/var/lib/nomad-alloc-table:ro"] : [],
          )
          # Agents: the name the aggregator's certificate carries, mapped to its address.
          extra_hosts = local.agent ? ["vector-aggregator:${VECTOR_AGGREGATOR_IP}"] : []
        }

        # The configuration files of the topology, rendered by Nomad: [[ ]] are the template's
        # delimiters ({{ }} belong to Vector's own templates in the sinks).
        dynamic "template" {
          for_each = local.vector_configs
          iterator = config
          content {
            data            = replace(file("vector/${config.value}"), "/opt/nomad/data/alloc", var.alloc_dir)
            destination     = "local/${config.value}"
            left_delimiter  = "[["
            right_delimiter = "]]"
            change_mode     = "signal"
            change_signal   = "SIGHUP"
          }
        }

        # Agents: the aggregator's address for extra_hosts (a new address recreates the
        # container). 127.0.0.1 until the service is registered: Vector buffers on disk.
        dynamic "template" {
          for_each = local.agent ? [1] : []
          content {
            data            = "VECTOR_AGGREGATOR_IP=[[ range nomadService \"vector-aggregator\" ]][[ .Address ]][[ break ]][[ else ]]127.0.0.1[[ end ]]\n"
            destination     = "secrets/aggregator.env"
            env             = true
            left_delimiter  = "[["
            right_delimiter = "]]"
            change_mode     = "restart"
          }
        }

        # Agents: the client certificate, from Nomad Variables.
        dynamic "template" {
          for_each = local.agent ? { "ca.pem" = "ca", "agent.pem" = "cert", "agent-key.pem" = "key" } : {}
          iterator = pem
          content {
            data        = "{{ with nomadVar \"nomad/jobs/vector\" }}{{ .${pem.value} }}{{ end }}"
            destination = "secrets/vector-tls/${pem.key}"
            perms       = "0400"
            change_mode = "restart"
          }
        }

        kill_timeout = "30s"

        resources {
          cpu    = 500
          memory = 512
        }
      }
    }

    dynamic "task" {
      for_each = local.vector_driver == "raw_exec" ? ["vector"] : []
      labels   = [task.value]

      content {
        driver = "raw_exec"

        config {
          command = "/usr/bin/vector"
          # raw_exec runs in the task directory: local/ is this task's.
          args = flatten([for c in local.vector_configs : ["--config", "local/${c}"]])
        }

        dynamic "template" {
          for_each = local.vector_configs
          iterator = config
          content {
            data            = replace(file("vector/${config.value}"), "/opt/nomad/data/alloc", var.alloc_dir)
            destination     = "local/${config.value}"
            left_delimiter  = "[["
            right_delimiter = "]]"
            change_mode     = "signal"
            change_signal   = "SIGHUP"
          }
        }

        kill_timeout = "30s"

        resources {
          cpu    = 500
          memory = 512
        }
      }
    }
  }
}
