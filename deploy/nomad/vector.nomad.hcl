# Vector and nomad-alloc-table on every client node, Vector in Docker.
#
# Minimum Nomad version: 1.7.0 (ACL policies attached to a job's workload identity; the Task
# API socket, unix://${NOMAD_SECRETS_DIR}/api.sock, exists since 1.5.0).
#
# Prerequisites on each client:
#   - /usr/bin/nomad-alloc-table installed (the .deb, or the release binary copied there);
#   - raw_exec enabled, and the Docker plugin allowing bind mounts (volumes { enabled = true });
#   - directories /var/lib/nomad-alloc-table (the table) and /var/lib/vector (checkpoints);
#   - the alloc dir at /opt/nomad/data/alloc (change the three paths below if not).
#
# The token comes from workload identity: attach the policy to this job first, under its own
# name (`nomad acl policy apply` without -job replaces a same-named policy and silently
# detaches the job):
#   nomad acl policy apply -namespace default -job vector nomad-alloc-table-job deploy/nomad/acl-policy.hcl
# then, from the repository root (file() paths are relative to it):
#   nomad job run deploy/nomad/vector.nomad.hcl
job "vector" {
  type      = "system"
  node_pool = "all"

  group "logs" {
    # The exporter's /metrics, /healthz and /readyz.
    network {
      port "metrics" {}
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    # Publishes the table once before Vector starts: Vector exits if the file is missing.
    task "table-init" {
      driver = "raw_exec"

      lifecycle {
        hook    = "prestart"
        sidecar = false
      }

      identity {
        env = true
      }

      env {
        NOMAD_ADDR    = "unix://${NOMAD_SECRETS_DIR}/api.sock"
        NOMAD_NODE_ID = "${node.unique.id}"
      }

      config {
        command = "/usr/bin/nomad-alloc-table"
        args    = ["dump", "--output", "/var/lib/nomad-alloc-table/allocs.csv"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }

    # Keeps the table current and signals the Vector task through Nomad after each change.
    task "table" {
      driver = "raw_exec"

      lifecycle {
        hook    = "prestart"
        sidecar = true
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
        args = [
          "run",
          "--output", "/var/lib/nomad-alloc-table/allocs.csv",
          "--alloc-dir", "/opt/nomad/data/alloc",
          "--reload", "nomad-task",
          "--reload-task", "vector",
          "--log-format", "json",
        ]
      }

      resources {
        cpu    = 100
        memory = 64
      }

      # /metrics, /healthz and /readyz on the node's address; Nomad checks readiness.
      service {
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

    task "vector" {
      driver = "docker"

      config {
        image = "timberio/vector:0.57.0-debian"
        args  = ["--config", "/local/vector.yaml", "--config", "/local/enrichment-table.yaml"]
        # The same paths inside as outside, so that the shipped configuration needs no edit.
        # Directories, not files: an atomically replaced table is seen through a directory mount.
        volumes = [
          "/opt/nomad/data/alloc:/opt/nomad/data/alloc:ro",
          "/var/lib/nomad-alloc-table:/var/lib/nomad-alloc-table:ro",
          "/var/lib/vector:/var/lib/vector",
        ]
      }

      template {
        data            = file("vector/vector.yaml")
        destination     = "local/vector.yaml"
        left_delimiter  = "[["
        right_delimiter = "]]"
        change_mode     = "signal"
        change_signal   = "SIGHUP"
      }

      template {
        data            = file("vector/enrichment-table.yaml")
        destination     = "local/enrichment-table.yaml"
        left_delimiter  = "[["
        right_delimiter = "]]"
        change_mode     = "signal"
        change_signal   = "SIGHUP"
      }

      kill_timeout = "30s"

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }
}
