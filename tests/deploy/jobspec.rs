//! Nomad's HCL2 job specifications, evaluated.

use super::*;

/// The roots Nomad resolves itself at run time (`${NOMAD_SECRETS_DIR}`, `${node.unique.id}`,
/// `${attr.…}`): Nomad's HCL2 parser leaves a reference it cannot resolve as it is
/// (hashicorp/nomad v1.11.3 `jobspec2/parse_test.go`, `TestParse_UndefinedVariables`). The
/// shipped jobs use environment-style names and `node`/`attr`/`meta`/`env` for those, and HCL2
/// variables, locals and iterators otherwise.
pub(super) fn resolved_by_nomad(root: &str) -> bool {
    matches!(root, "node" | "attr" | "meta" | "env")
        || root.starts_with(|c: char| c.is_ascii_uppercase())
}

/// The job file's text with every run-time reference escaped (`$${`), so that evaluating it
/// leaves `${…}` in the strings, as Nomad does.
pub(super) fn escape_runtime_references(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        let escaped = at > 0 && rest.as_bytes()[at - 1] == b'$';
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let root: String = after
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        if !escaped && resolved_by_nomad(&root) {
            out.push('$');
        }
        out.push_str("${");
        rest = after;
    }
    out.push_str(rest);
    out
}

pub(super) fn func_file(args: FuncArgs) -> Result<Value, String> {
    let path = args[0].as_str().expect("a string");
    std::fs::read_to_string(repo(path))
        .map(Value::from)
        .map_err(|e| format!("file({path:?}): {e}"))
}

pub(super) fn func_concat(args: FuncArgs) -> Result<Value, String> {
    let mut out = Vec::new();
    for list in args.iter() {
        out.extend(
            list.as_array()
                .ok_or("concat of a non-list")?
                .iter()
                .cloned(),
        );
    }
    Ok(Value::Array(out))
}

pub(super) fn func_flatten(args: FuncArgs) -> Result<Value, String> {
    fn flat(value: &Value, out: &mut Vec<Value>) {
        match value {
            Value::Array(items) => items.iter().for_each(|i| flat(i, out)),
            other => out.push(other.clone()),
        }
    }
    let mut out = Vec::new();
    flat(&args[0], &mut out);
    Ok(Value::Array(out))
}

pub(super) fn func_contains(args: FuncArgs) -> Result<Value, String> {
    let list = args[0].as_array().ok_or("contains of a non-list")?;
    Ok(Value::Bool(list.contains(&args[1])))
}

/// Nomad's `replace(string, substring, replacement)` (literal substrings).
pub(super) fn func_replace(args: FuncArgs) -> Result<Value, String> {
    let text = |i: usize| args[i].as_str().ok_or("replace of a non-string");
    Ok(Value::String(text(0)?.replace(text(1)?, text(2)?)))
}

pub(super) fn base_context() -> Context<'static> {
    let mut ctx = Context::new();
    ctx.declare_func(
        "replace",
        FuncDef::builder()
            .params([ParamType::String, ParamType::String, ParamType::String])
            .build(func_replace),
    );
    ctx.declare_func(
        "file",
        FuncDef::builder().param(ParamType::String).build(func_file),
    );
    ctx.declare_func(
        "concat",
        FuncDef::builder()
            .variadic_param(ParamType::Any)
            .build(func_concat),
    );
    ctx.declare_func(
        "flatten",
        FuncDef::builder().param(ParamType::Any).build(func_flatten),
    );
    ctx.declare_func(
        "contains",
        FuncDef::builder()
            .params([ParamType::Any, ParamType::Any])
            .build(func_contains),
    );
    ctx
}

pub(super) fn eval(expr: &Expression, ctx: &Context, place: &str) -> Value {
    expr.evaluate(ctx)
        .unwrap_or_else(|e| panic!("{place}: {expr} does not evaluate: {e}"))
}

/// A body with every attribute evaluated and every `dynamic` block expanded (HCL's dynblock,
/// which Nomad applies to the job: `jobspec2/types.config.go`).
pub(super) fn expand(body: &Body, ctx: &Context, place: &str) -> Body {
    let mut out = Body::builder();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(a) => {
                let value = eval(a.expr(), ctx, place);
                out = out.add_attribute(Attribute::new(a.key(), Expression::from(value)));
            }
            Structure::Block(b) if b.identifier() == "dynamic" => {
                let kind = label(b);
                let iterator = match attribute(b.body(), "iterator") {
                    Some(Expression::Variable(v)) => v.as_str().to_owned(),
                    Some(other) => panic!("{place}: iterator {other}"),
                    None => kind.clone(),
                };
                let for_each = attribute(b.body(), "for_each")
                    .unwrap_or_else(|| panic!("{place}: dynamic {kind:?} without for_each"));
                let items: Vec<(Value, Value)> = match eval(for_each, ctx, place) {
                    Value::Array(items) => items
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (Value::from(i as u64), v))
                        .collect(),
                    Value::Object(map) => {
                        map.into_iter().map(|(k, v)| (Value::from(k), v)).collect()
                    }
                    other => panic!("{place}: for_each {other:?}"),
                };
                let content = blocks(b.body(), "content")
                    .next()
                    .unwrap_or_else(|| panic!("{place}: dynamic {kind:?} without content"));
                for (key, value) in items {
                    let mut child = ctx.clone();
                    let mut it = hcl::Map::new();
                    it.insert("key".to_owned(), key);
                    it.insert("value".to_owned(), value);
                    child.declare_var(iterator.as_str(), Value::Object(it));
                    let labels: Vec<String> = match attribute(b.body(), "labels") {
                        Some(l) => match eval(l, &child, place) {
                            Value::Array(ls) => ls
                                .iter()
                                .map(|l| l.as_str().expect("string labels").to_owned())
                                .collect(),
                            other => panic!("{place}: labels {other:?}"),
                        },
                        None => Vec::new(),
                    };
                    out = out.add_block(
                        Block::builder(kind.as_str())
                            .add_labels(labels)
                            .add_structures(expand(content.body(), &child, place).into_inner())
                            .build(),
                    );
                }
            }
            Structure::Block(b) => {
                out = out.add_block(
                    Block::builder(b.identifier())
                        .add_labels(b.labels().iter().map(|l| l.as_str().to_owned()))
                        .add_structures(expand(b.body(), ctx, place).into_inner())
                        .build(),
                );
            }
        }
    }
    out.build()
}

/// One evaluation of a job file: the `-var` values it was given and the job as Nomad sees it.
#[derive(Clone)]
pub(super) struct Variant {
    pub(super) file: PathBuf,
    pub(super) vars: Vec<(String, String)>,
    pub(super) job: Block,
}

impl Variant {
    pub(super) fn place(&self) -> String {
        let vars: Vec<String> = self
            .vars
            .iter()
            .map(|(k, v)| format!("-var {k}={v}"))
            .collect();
        format!("{} {}", relative(&self.file), vars.join(" "))
    }

    pub(super) fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn groups(&self) -> impl Iterator<Item = &Block> {
        blocks(self.job.body(), "group")
    }

    pub(super) fn tasks(&self) -> impl Iterator<Item = &Block> {
        self.groups().flat_map(|g| blocks(g.body(), "task"))
    }

    pub(super) fn header(&self) -> String {
        std::fs::read_to_string(&self.file)
            .expect("readable")
            .lines()
            .take_while(|l| l.starts_with('#') || l.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Values tried beside the default for variables that take any value: a data dir other than
/// Nomad's default, so that everything that depends on it is seen to follow it.
const OTHER_VALUES: &[(&str, &str)] = &[("alloc_dir", "/srv/nomad/data/alloc")];

/// The values a variable may take: its `validation`'s `contains([…], var.x)` list, else its
/// default (and the value of [`OTHER_VALUES`] for it, if any).
pub(super) fn allowed_values(variable: &Block, place: &str) -> Vec<String> {
    let ctx = base_context();
    let default = attribute(variable.body(), "default")
        .map(|d| eval(d, &ctx, place))
        .and_then(|v| v.as_str().map(str::to_owned));
    for validation in blocks(variable.body(), "validation") {
        if let Some(Expression::FuncCall(call)) = attribute(validation.body(), "condition")
            && call.name.name.as_str() == "contains"
            && let Some(Expression::Array(values)) = call.args.first()
        {
            return values.iter().filter_map(string).collect();
        }
    }
    let default =
        default.unwrap_or_else(|| panic!("{place}: variable {} has no default", label(variable)));
    let other = OTHER_VALUES
        .iter()
        .filter(|(name, _)| *name == label(variable))
        .map(|(_, value)| (*value).to_owned());
    std::iter::once(default).chain(other).collect()
}

/// Every combination of the values a job file's variables allow that Nomad accepts, each
/// evaluated.
pub(super) fn variants(file: &Path) -> Vec<Variant> {
    evaluated(file).into_iter().filter_map(Result::ok).collect()
}

/// A combination of variables Nomad refuses, and the locals that fail to evaluate for it.
pub(super) type Refusal = (Vec<(String, String)>, Vec<String>);

/// The combinations Nomad refuses: a local fails to evaluate (Nomad evaluates every local and
/// refuses the job when one fails), with the locals that failed.
pub(super) fn refused(file: &Path) -> Vec<Refusal> {
    evaluated(file)
        .into_iter()
        .filter_map(Result::err)
        .collect()
}

/// Every combination, evaluated, or refused with the locals that fail.
fn evaluated(file: &Path) -> Vec<Result<Variant, Refusal>> {
    let place = relative(file);
    let text = std::fs::read_to_string(file).expect("readable");
    let body = hcl::parse(&escape_runtime_references(&text))
        .unwrap_or_else(|e| panic!("{place} does not parse: {e}"));
    let variables: Vec<(String, Vec<String>)> = blocks(&body, "variable")
        .map(|v| (label(v), allowed_values(v, &place)))
        .collect();
    let mut combinations: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (name, values) in &variables {
        combinations = combinations
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((name.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    combinations
        .into_iter()
        .map(|vars| {
            let mut ctx = base_context();
            let mut var = hcl::Map::new();
            for (k, v) in &vars {
                var.insert(k.clone(), Value::from(v.as_str()));
            }
            ctx.declare_var("var", Value::Object(var));
            // Locals may use each other: evaluate until every one resolves.
            let pending: Vec<&Attribute> = blocks(&body, "locals")
                .flat_map(|l| l.body().attributes())
                .collect();
            let mut locals = hcl::Map::new();
            for _ in 0..=pending.len() {
                for a in &pending {
                    if let Ok(value) = a.expr().evaluate(&ctx) {
                        locals.insert(a.key().to_owned(), value);
                    }
                }
                ctx.declare_var("local", Value::Object(locals.clone()));
            }
            let failed: Vec<String> = pending
                .iter()
                .map(|a| a.key().to_owned())
                .filter(|key| !locals.contains_key(key))
                .collect();
            if !failed.is_empty() {
                return Err((vars, failed));
            }
            let place = format!("{place} {vars:?}");
            let job = blocks(&body, "job")
                .next()
                .unwrap_or_else(|| panic!("{place}: no job"));
            let job = Block::builder("job")
                .add_labels(job.labels().iter().map(|l| l.as_str().to_owned()))
                .add_structures(expand(job.body(), &ctx, &place).into_inner())
                .build();
            Ok(Variant {
                file: file.to_owned(),
                vars,
                job,
            })
        })
        .collect()
}

pub(super) fn all_variants() -> Vec<Variant> {
    job_files().iter().flat_map(|f| variants(f)).collect()
}
