# The Vector aggregator of the agent → aggregator topology: one service that receives the
# labelled lines of every agent (vector/agent.yaml) over TLS and sends them on
# (vector/aggregator.yaml). Agents reach it through its service, vector-aggregator.
#
# Minimum Nomad version: 1.6.0 (node pools; Nomad service discovery and nomadVar templates
# exist since 1.3.0 and 1.4.0).
#
# The certificates come from Nomad Variables, rendered into the task's secrets:
#   nomad var put nomad/jobs/vector-aggregator ca=@ca.pem cert=@aggregator.pem key=@aggregator-key.pem
# (the agents need a client certificate from the same CA). Then, from the repository root:
#   nomad job run deploy/nomad/vector-aggregator.nomad.hcl
job "vector-aggregator" {
  type      = "service"
  node_pool = "default"

  group "aggregator" {
    count = 1

    network {
      port "vector" {
        static = 6000
        to     = 6000
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

    task "vector" {
      driver = "docker"

      config {
        image = "timberio/vector:0.57.0-debian"
        args  = ["--config", "/local/aggregator.yaml"]
        ports = ["vector"]
        # Certificates at the paths aggregator.yaml names; buffers and files on the host.
        volumes = [
          "secrets/tls:/etc/vector/tls:ro",
          "/var/lib/vector-aggregator:/var/lib/vector",
        ]
      }

      template {
        data            = file("vector/aggregator.yaml")
        destination     = "local/aggregator.yaml"
        left_delimiter  = "[["
        right_delimiter = "]]"
        change_mode     = "signal"
        change_signal   = "SIGHUP"
      }

      template {
        data        = "{{ with nomadVar \"nomad/jobs/vector-aggregator\" }}{{ .ca }}{{ end }}"
        destination = "secrets/tls/ca.pem"
        change_mode = "restart"
      }

      template {
        data        = "{{ with nomadVar \"nomad/jobs/vector-aggregator\" }}{{ .cert }}{{ end }}"
        destination = "secrets/tls/aggregator.pem"
        change_mode = "restart"
      }

      template {
        data        = "{{ with nomadVar \"nomad/jobs/vector-aggregator\" }}{{ .key }}{{ end }}"
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
