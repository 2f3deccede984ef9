//! Nomad's template step.

use super::*;

pub(super) const OWN: &str = "0b6f4a1c-2d3e-4f50-8a9b-0c1d2e3f4a5b";
pub(super) const NEIGHBOUR: &str = "5e0c9d1a-2b7f-4c3e-9a61-0d2f8b7c4e11";
pub(super) const SERVICE_ADDRESS: &str = "10.0.0.7";

/// What a task's templates see: its environment and the cluster's Nomad services.
pub(super) struct TemplateWorld {
    pub(super) env: BTreeMap<String, String>,
    /// Services registered with `provider = "nomad"`: name → (address, port).
    pub(super) services: BTreeMap<String, (String, u16)>,
}

#[derive(Debug)]
pub(super) enum Node {
    Text(String),
    Env(String),
    Field(String),
    Break,
    Range {
        service: String,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    WithVar {
        path: String,
        body: Vec<Node>,
    },
}

/// The template's actions, in the subset of consul-template the shipped files use; any other
/// action fails the test (add it here, with Nomad's meaning, before using it).
pub(super) fn parse_template(text: &str, left: &str, right: &str) -> Vec<Node> {
    fn quoted(words: &str) -> String {
        let start = words.find('"').expect("a quoted argument") + 1;
        let end = words[start..].find('"').expect("closing quote") + start;
        words[start..end].to_owned()
    }
    let mut stack: Vec<(Vec<Node>, Option<Node>, bool)> = vec![(Vec::new(), None, false)];
    let mut rest = text;
    loop {
        let Some(at) = rest.find(left) else {
            stack
                .last_mut()
                .expect("frame")
                .0
                .push(Node::Text(rest.to_owned()));
            break;
        };
        stack
            .last_mut()
            .expect("frame")
            .0
            .push(Node::Text(rest[..at].to_owned()));
        let after = &rest[at + left.len()..];
        let end = after
            .find(right)
            .unwrap_or_else(|| panic!("unclosed {left} in template"));
        let action = after[..end].trim();
        rest = &after[end + right.len()..];
        if action.starts_with("/*") {
            continue;
        }
        if let Some(args) = action.strip_prefix("env ") {
            stack
                .last_mut()
                .expect("frame")
                .0
                .push(Node::Env(quoted(args)));
        } else if let Some(field) = action.strip_prefix('.') {
            stack
                .last_mut()
                .expect("frame")
                .0
                .push(Node::Field(field.to_owned()));
        } else if action == "break" {
            stack.last_mut().expect("frame").0.push(Node::Break);
        } else if let Some(args) = action.strip_prefix("range nomadService ") {
            assert!(
                args.trim().starts_with('"'),
                "nomadService with more arguments than a name: {action}"
            );
            let open = Node::Range {
                service: quoted(args),
                body: Vec::new(),
                otherwise: Vec::new(),
            };
            stack.push((Vec::new(), Some(open), false));
        } else if let Some(args) = action.strip_prefix("with nomadVar ") {
            let open = Node::WithVar {
                path: quoted(args),
                body: Vec::new(),
            };
            stack.push((Vec::new(), Some(open), false));
        } else if action == "else" {
            let frame = stack.last_mut().expect("frame");
            assert!(
                matches!(frame.1, Some(Node::Range { .. })),
                "else outside a range"
            );
            if let Some(Node::Range { body, .. }) = &mut frame.1 {
                *body = std::mem::take(&mut frame.0);
            }
            frame.2 = true;
        } else if action == "end" {
            let (nodes, open, in_else) = stack.pop().expect("an open action");
            let node = match open.expect("end without an open action") {
                Node::Range { service, body, .. } => {
                    if in_else {
                        Node::Range {
                            service,
                            body,
                            otherwise: nodes,
                        }
                    } else {
                        Node::Range {
                            service,
                            body: nodes,
                            otherwise: Vec::new(),
                        }
                    }
                }
                Node::WithVar { path, .. } => Node::WithVar { path, body: nodes },
                other => unreachable!("{other:?}"),
            };
            stack.last_mut().expect("frame").0.push(node);
        } else {
            panic!("template action {action:?} is not modelled by this test");
        }
    }
    assert_eq!(stack.len(), 1, "unclosed range or with in template");
    stack.pop().expect("frame").0
}

/// Renders `nodes`; `true` when a `break` stopped it.
pub(super) fn render_nodes(
    nodes: &[Node],
    world: &TemplateWorld,
    dot: Option<&BTreeMap<String, String>>,
    out: &mut String,
) -> bool {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Env(name) => out.push_str(world.env.get(name).map_or("", String::as_str)),
            Node::Field(f) => out.push_str(
                dot.and_then(|d| d.get(f))
                    .unwrap_or_else(|| panic!("template field .{f} has no value here")),
            ),
            Node::Break => return true,
            Node::Range {
                service,
                body,
                otherwise,
            } => match world.services.get(service) {
                Some((address, port)) => {
                    let instance = BTreeMap::from([
                        ("Address".to_owned(), address.clone()),
                        ("Port".to_owned(), port.to_string()),
                        ("Name".to_owned(), service.clone()),
                    ]);
                    render_nodes(body, world, Some(&instance), out);
                }
                None => {
                    render_nodes(otherwise, world, dot, out);
                }
            },
            Node::WithVar { path, body } => {
                // A task's workload identity reads only its own job's variables
                // (nomad/jobs/<job>[/<group>[/<task>]], hashicorp/nomad v1.11.3 acl/acl.go):
                // anything else renders nothing, and the task blocks waiting for it.
                let job = world
                    .env
                    .get("NOMAD_JOB_ID")
                    .expect("NOMAD_JOB_ID in the task's environment");
                let own = format!("nomad/jobs/{job}");
                assert!(
                    *path == own || path.starts_with(&format!("{own}/")),
                    "nomadVar {path:?}: the task of job {job} may read only {own}[/…]"
                );
                let pem = BTreeMap::from([
                    ("ca".to_owned(), "CA PEM".to_owned()),
                    ("cert".to_owned(), "CERT PEM".to_owned()),
                    ("key".to_owned(), "KEY PEM".to_owned()),
                    ("token".to_owned(), "TOKEN".to_owned()),
                ]);
                render_nodes(body, world, Some(&pem), out);
            }
        }
    }
    false
}

pub(super) fn render_template(
    text: &str,
    left: &str,
    right: &str,
    world: &TemplateWorld,
) -> String {
    let mut out = String::new();
    render_nodes(&parse_template(text, left, right), world, None, &mut out);
    out
}

/// The Nomad services the shipped jobs register (provider "nomad"), each at a made-up address
/// and its static port (else a dynamic one).
pub(super) fn nomad_services() -> BTreeMap<String, (String, u16)> {
    let mut services = BTreeMap::new();
    for variant in all_variants() {
        for group in variant.groups() {
            let ports: BTreeMap<String, u16> = blocks(group.body(), "network")
                .flat_map(|n| blocks(n.body(), "port"))
                .map(|p| {
                    let port = attribute(p.body(), "static")
                        .and_then(|s| s.to_string().parse().ok())
                        .unwrap_or(23456);
                    (label(p), port)
                })
                .collect();
            let group_services = blocks(group.body(), "service");
            let task_services =
                blocks(group.body(), "task").flat_map(|t| blocks(t.body(), "service"));
            for service in group_services.chain(task_services) {
                if attribute(service.body(), "provider")
                    .and_then(string)
                    .as_deref()
                    != Some("nomad")
                {
                    continue;
                }
                let name = attribute(service.body(), "name")
                    .and_then(string)
                    .expect("name");
                let port_label = attribute(service.body(), "port")
                    .and_then(string)
                    .expect("port");
                let port = *ports.get(&port_label).unwrap_or(&23456);
                services.insert(name, (SERVICE_ADDRESS.to_owned(), port));
            }
        }
    }
    services
}
