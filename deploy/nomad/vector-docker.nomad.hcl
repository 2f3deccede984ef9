# The Docker variant: the exporter runs from its container image (the Dockerfile at the
# repository root), Vector in Docker too; nothing is installed on the clients.
#
# Minimum Nomad version: 1.7.0 (ACL policies attached to a job's workload identity; the Task
# API socket, unix://${NOMAD_SECRETS_DIR}/api.sock, exists since 1.5.0, inside containers too).
#
# Prerequisites on each client:
#   - the image: docker build -t nomad-alloc-table:0.1.0 . (or push it to your registry and
#     change the two image lines);
#   - the Docker plugin allowing bind mounts (volumes { enabled = true });
#   - /var/lib/nomad-alloc-table owned by uid 65532 (the image's non-root user), and Nomad's
#     alloc dir listable by it: setfacl -m u:65532:rx /opt/nomad/data/alloc (Nomad makes it 0711);
#   - /var/lib/vector for Vector's checkpoints.
#
# Attach the policy to the job under its own name, then run it from the repository root:
#   nomad acl policy apply -namespace default -job vector-docker nomad-alloc-table-job deploy/nomad/acl-policy.hcl
#   nomad job run deploy/nomad/vector-docker.nomad.hcl
job "vector-docker" {
  type      = "system"
  node_pool = "all"

  group "logs" {
    # The exporter's /metrics, /healthz and /readyz.
    network {
      port "metrics" {
        to = 9466
      }
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    # Publishes the table once before Vector starts: Vector exits if the file is missing.
    task "table-init" {
      driver = "docker"

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
        image   = "nomad-alloc-table:0.1.0"
        args    = ["dump", "--output", "/var/lib/nomad-alloc-table/allocs.csv"]
        volumes = ["/var/lib/nomad-alloc-table:/var/lib/nomad-alloc-table"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }

    # Keeps the table current and signals the Vector task through Nomad after each change.
    task "table" {
      driver = "docker"

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
        NOMAD_ALLOC_TABLE_LISTEN = "0.0.0.0:9466"
      }

      config {
        image = "nomad-alloc-table:0.1.0"
        ports = ["metrics"]
        args = [
          "run",
          "--output", "/var/lib/nomad-alloc-table/allocs.csv",
          "--alloc-dir", "/opt/nomad/data/alloc",
          "--reload", "nomad-task",
          "--reload-task", "vector",
          "--log-format", "json",
        ]
        # The alloc dir read-only (only its entries are watched), the table's directory
        # writable: a renamed table is seen through a directory mount, never a file mount.
        volumes = [
          "/opt/nomad/data/alloc:/opt/nomad/data/alloc:ro",
          "/var/lib/nomad-alloc-table:/var/lib/nomad-alloc-table",
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
