//! The agent → aggregator topologies: agents find and trust the aggregator, and labels are made
//! on exactly one side.

use super::*;

#[test]
fn agents_reach_the_aggregator_by_nomad_service_and_verify_its_certificate() {
    let runs = nomad_vectors();
    let services = nomad_services();
    let mut topologies = BTreeSet::new();
    for (_, run) in &runs {
        let config = run.config();
        for (_, sink) in config.of_kind("sinks") {
            if sink["type"].as_str() != Some("vector") {
                continue;
            }
            let place = &run.place;
            let address = sink["address"].as_str().expect("an address");
            let (host, port) = address.rsplit_once(':').expect("host:port");
            // The address comes from Nomad's service discovery: the port is the registered
            // service's, and the host resolves to its address inside the task.
            let (service_address, service_port) = services
                .values()
                .find(|(_, p)| p.to_string() == port)
                .unwrap_or_else(|| {
                    panic!("{place}: {address} is no registered Nomad service's port")
                });
            let resolved = run.hosts.get(host).map(String::as_str).unwrap_or(host);
            assert_eq!(
                resolved, service_address,
                "{place}: {host} does not lead to the aggregator (only docker's extra_hosts make a \
             name resolve inside the task)"
            );
            assert_eq!(port, service_port.to_string());
            // verify_hostname checks the name connected to: the aggregator's certificate must
            // carry it, as the aggregator job's header says.
            assert_eq!(
                sink["tls"]["verify_hostname"].as_bool(),
                Some(true),
                "{place}"
            );
            assert_eq!(
                sink["tls"]["verify_certificate"].as_bool(),
                Some(true),
                "{place}"
            );
            let aggregator_header = read("deploy/nomad/vector-aggregator.nomad.hcl");
            assert!(
                aggregator_header.contains(&format!("DNS:{host}")),
                "{place}: the aggregator's certificate is not said to carry DNS:{host}"
            );
            // The client certificate and key are rendered (from Nomad Variables) where the sink
            // reads them.
            for key in ["ca_file", "crt_file", "key_file"] {
                let path = sink["tls"][key]
                    .as_str()
                    .unwrap_or_else(|| panic!("{place}: tls.{key}"));
                let relative = path
                    .strip_prefix(&run.secrets_dir)
                    .map(|p| format!("secrets{p}"))
                    .unwrap_or_else(|| {
                        panic!("{place}: tls.{key} {path} is not in the task's secrets")
                    });
                let pem = run
                    .rendered
                    .get(&relative)
                    .unwrap_or_else(|| panic!("{place}: no template renders {relative}"));
                assert!(pem.contains("PEM"), "{place}: {relative} from nomadVar");
            }
            let inputs = yaml_strings(&sink["inputs"]);
            let labelled = inputs.iter().all(|i| config.get("transforms", i).is_some());
            let raw = inputs.iter().all(|i| {
                config
                    .get("sources", i)
                    .is_some_and(|s| s["type"].as_str() == Some("file"))
            });
            if labelled {
                topologies.insert("labels at the edge");
            }
            if raw && config.of_kind("enrichment_tables").next().is_none() {
                topologies.insert("forward-only, no table on the node");
            }
        }
    }
    assert_eq!(
        topologies,
        BTreeSet::from(["labels at the edge", "forward-only, no table on the node"]),
        "a shipped job runs each kind of agent"
    );
}

#[test]
fn the_two_agent_sinks_differ_only_in_their_input() {
    let sink = |path: &str| {
        let yaml = yaml_rust2::YamlLoader::load_from_str(&read(path))
            .expect("YAML")
            .remove(0);
        let mut sink = yaml["sinks"]["aggregator"].clone();
        if let Yaml::Hash(h) = &mut sink {
            h.remove(&Yaml::String("inputs".to_owned()));
        }
        sink
    };
    assert_eq!(sink("vector/agent.yaml"), sink("vector/agent-forward.yaml"));
}

#[test]
fn aggregators_label_with_a_table_only_where_the_agents_do_not() {
    let runs = nomad_vectors();
    let mut labels = BTreeSet::new();
    for (variant, run) in &runs {
        let config = run.config();
        let Some(source) = config.get("sources", "agents") else {
            continue;
        };
        let place = &run.place;
        assert_eq!(source["type"].as_str(), Some("vector"), "{place}");
        assert_eq!(source["tls"]["enabled"].as_bool(), Some(true), "{place}");
        assert_eq!(
            source["tls"]["verify_certificate"].as_bool(),
            Some(true),
            "{place}: only agents with a certificate from the CA may send"
        );
        let topology = variant.var("topology").unwrap_or_default();
        let labelled_here = config.get("transforms", "nomad_labelled").is_some();
        assert_eq!(
            labelled_here,
            topology == "forward-agent",
            "{place}: an aggregator labels exactly when its agents forward raw lines"
        );
        if labelled_here {
            let table = config
                .get("enrichment_tables", "nomad_allocs")
                .expect("the cluster table");
            assert_eq!(
                table["file"]["path"].as_str(),
                Some("/var/lib/nomad-alloc-table/cluster.csv")
            );
            let exporter = invocations(variant);
            assert!(
                exporter
                    .iter()
                    .all(|i| value_of(&i.args, "--scope") == Some("cluster")
                        && value_of(&i.args, "--output") == table["file"]["path"].as_str()),
                "{place}: the cluster-scope exporter publishes the table Vector loads"
            );
        }
        let sinks: Vec<_> = config.of_kind("sinks").collect();
        assert_eq!(
            sinks.len(),
            1,
            "{place}: one sink enabled, the others commented out"
        );
        labels.insert(labelled_here);
    }
    assert_eq!(labels.len(), 2, "both aggregators are shipped");
}
