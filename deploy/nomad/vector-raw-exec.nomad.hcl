# The same deployment with Vector under raw_exec and an ACL token kept in Nomad Variables
# instead of the workload identity (for clusters that manage tokens themselves, or Nomad before
# 1.7, where job-attached policies do not exist).
#
# Minimum Nomad version: 1.6.0 (node pools; nomadVar templates exist since 1.4.0, the Task API
# socket, unix://${NOMAD_SECRETS_DIR}/api.sock, since 1.5.0; it accepts ACL tokens too).
#
# Store the token once:
#   nomad var put nomad/jobs/vector-raw-exec token=<secret ID of a token with acl-policy.hcl>
# then, from the repository root:
#   nomad job run deploy/nomad/vector-raw-exec.nomad.hcl
# Vector must be installed at /usr/bin/vector; it runs as a local process, so the reload is a
# signal to the one process named "vector" (pidfd, name check, never younger than a second).
job "vector-raw-exec" {
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

    task "table-init" {
      driver = "raw_exec"

      lifecycle {
        hook    = "prestart"
        sidecar = false
      }

      template {
        data        = "{{ with nomadVar \"nomad/jobs/vector-raw-exec\" }}{{ .token }}{{ end }}"
        destination = "secrets/nomad-token"
        perms       = "0400"
      }

      env {
        NOMAD_ADDR    = "unix://${NOMAD_SECRETS_DIR}/api.sock"
        NOMAD_NODE_ID = "${node.unique.id}"
      }

      config {
        command = "/usr/bin/nomad-alloc-table"
        args = [
          "dump",
          "--token-file", "${NOMAD_SECRETS_DIR}/nomad-token",
          "--output", "/var/lib/nomad-alloc-table/allocs.csv",
        ]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }

    task "table" {
      driver = "raw_exec"

      lifecycle {
        hook    = "prestart"
        sidecar = true
      }

      # Re-rendered when the variable changes; the daemon re-reads the file by itself.
      template {
        data        = "{{ with nomadVar \"nomad/jobs/vector-raw-exec\" }}{{ .token }}{{ end }}"
        destination = "secrets/nomad-token"
        perms       = "0400"
        change_mode = "noop"
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
          "--token-file", "${NOMAD_SECRETS_DIR}/nomad-token",
          "--output", "/var/lib/nomad-alloc-table/allocs.csv",
          "--alloc-dir", "/opt/nomad/data/alloc",
          "--reload", "signal",
          "--vector-process-name", "vector",
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
      driver = "raw_exec"

      config {
        command = "/usr/bin/vector"
        args    = ["--config", "${NOMAD_TASK_DIR}/vector.yaml", "--config", "${NOMAD_TASK_DIR}/enrichment-table.yaml"]
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
