# The aggregator that labels: agents on every node forward raw task log lines with their file
# path (vector/agent.yaml with `inputs: [nomad_task_logs]`), and this one service keeps the
# table of every allocation of the cluster (`nomad-alloc-table run --scope cluster`) and labels
# them (vector/aggregator-cluster.yaml). For Nomad's servers that is one event-stream
# subscriber for the whole cluster instead of one per node. Agents reach it through its
# service, vector-aggregator.
#
# Minimum Nomad version: 1.7.0 (ACL policies attached to a job's workload identity; the Task
# API socket, unix://${NOMAD_SECRETS_DIR}/api.sock, exists since 1.5.0, inside containers too).
#
# Prerequisites on the client that runs it:
#   - the image: docker build -t nomad-alloc-table:0.1.0 . (or push it to your registry and
#     change the two image lines);
#   - the Docker plugin allowing bind mounts (volumes { enabled = true });
#   - /var/lib/nomad-alloc-table owned by uid 65532 (the image's non-root user);
#   - /var/lib/vector-aggregator for Vector's buffers and files.
# The certificates come from Nomad Variables, rendered into the task's secrets:
#   nomad var put nomad/jobs/vector-aggregator-cluster ca=@ca.pem cert=@aggregator.pem key=@aggregator-key.pem
# Attach the policy (node:read and read-job in every namespace; alloc-lifecycle to signal
# Vector) to the job under its own name, then run it from the repository root:
#   nomad acl policy apply -namespace default -job vector-aggregator-cluster nomad-alloc-table-job deploy/nomad/acl-policy.hcl
#   nomad job run deploy/nomad/vector-aggregator-cluster.nomad.hcl
job "vector-aggregator-cluster" {
  type      = "service"
  node_pool = "default"

  group "aggregator" {
    count = 1

    network {
      port "vector" {
        static = 6000
        to     = 6000
      }
      # The exporter's /metrics, /healthz and /readyz.
      port "metrics" {
        to = 9466
      }
    }

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

    # Publishes the cluster's table once before Vector starts: Vector exits if the file is
    # missing.
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
        NOMAD_ADDR = "unix://${NOMAD_SECRETS_DIR}/api.sock"
      }

      config {
        image   = "nomad-alloc-table:0.1.0"
        args    = ["dump", "--scope", "cluster", "--output", "/var/lib/nomad-alloc-table/cluster.csv"]
        volumes = ["/var/lib/nomad-alloc-table:/var/lib/nomad-alloc-table"]
      }

      resources {
        cpu    = 300
        memory = 512
      }
    }

    # Keeps the cluster's table current and signals the Vector task through Nomad after each
    # change.
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
        NOMAD_ALLOC_TABLE_LISTEN = "0.0.0.0:9466"
      }

      config {
        image = "nomad-alloc-table:0.1.0"
        ports = ["metrics"]
        args = [
          "run",
          "--scope", "cluster",
          "--output", "/var/lib/nomad-alloc-table/cluster.csv",
          "--reload", "nomad-task",
          "--reload-task", "vector",
          "--log-format", "json",
        ]
        # The table's directory: a renamed table is seen through a directory mount, never a
        # file mount.
        volumes = ["/var/lib/nomad-alloc-table:/var/lib/nomad-alloc-table"]
      }

      # Peak RSS measured: 123 MiB for 48,000 rows of 12,000 job versions, 238 MiB for
      # 100,000 rows of 25,000 (BENCHMARKS.md, cluster scope): size it for your cluster.
      resources {
        cpu    = 300
        memory = 512
      }

      service {
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

    task "vector" {
      driver = "docker"

      config {
        image = "timberio/vector:0.57.0-debian"
        args  = ["--config", "/local/aggregator-cluster.yaml"]
        ports = ["vector"]
        volumes = [
          "secrets/tls:/etc/vector/tls:ro",
          "/var/lib/nomad-alloc-table:/var/lib/nomad-alloc-table:ro",
          "/var/lib/vector-aggregator:/var/lib/vector",
        ]
      }

      template {
        data            = file("vector/aggregator-cluster.yaml")
        destination     = "local/aggregator-cluster.yaml"
        left_delimiter  = "[["
        right_delimiter = "]]"
        change_mode     = "signal"
        change_signal   = "SIGHUP"
      }

      template {
        data        = "{{ with nomadVar \"nomad/jobs/vector-aggregator-cluster\" }}{{ .ca }}{{ end }}"
        destination = "secrets/tls/ca.pem"
        change_mode = "restart"
      }

      template {
        data        = "{{ with nomadVar \"nomad/jobs/vector-aggregator-cluster\" }}{{ .cert }}{{ end }}"
        destination = "secrets/tls/aggregator.pem"
        change_mode = "restart"
      }

      template {
        data        = "{{ with nomadVar \"nomad/jobs/vector-aggregator-cluster\" }}{{ .key }}{{ end }}"
        destination = "secrets/tls/aggregator-key.pem"
        perms       = "0400"
        change_mode = "restart"
      }

      kill_timeout = "30s"

      resources {
        cpu    = 1000
        memory = 1024
      }
    }
  }
}
