//! The operations of the OpenAPI document (`pageserver/src/http/openapi.yaml`), for the suites
//! that hold the server to it: the route agreement test, the auth sweep and the schemathesis run.

use yaml_rust2::{Yaml, YamlLoader};

/// One operation of the document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Operation {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path template, e.g. `/v1/tenant/{tenant_id}`.
    pub path: String,
    /// `security: []`: no token needed even with JWT auth.
    pub open: bool,
    /// `x-testing-only: true`: served only by builds with the `testing` feature.
    pub testing_only: bool,
    /// The response statuses the document names.
    pub statuses: Vec<String>,
}

/// Every operation of `yaml`, sorted.
pub fn operations(yaml: &str) -> anyhow::Result<Vec<Operation>> {
    let docs = YamlLoader::load_from_str(yaml)?;
    let doc = docs
        .first()
        .ok_or_else(|| anyhow::anyhow!("empty document"))?;
    let paths = doc["paths"]
        .as_hash()
        .ok_or_else(|| anyhow::anyhow!("no paths"))?;
    let mut ops = Vec::new();
    for (path, item) in paths {
        let path = path
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("a path is not a string"))?;
        let item = item
            .as_hash()
            .ok_or_else(|| anyhow::anyhow!("{path}: not a map"))?;
        for (method, op) in item {
            let Some(method) = method.as_str() else {
                continue;
            };
            if !["get", "put", "post", "delete", "patch", "head", "options"].contains(&method) {
                continue;
            }
            let open = op["security"].as_vec().is_some_and(|v| v.is_empty());
            let testing_only = op["x-testing-only"] == Yaml::Boolean(true);
            let statuses = op["responses"]
                .as_hash()
                .map(|h| {
                    h.keys()
                        .filter_map(|k| match k {
                            Yaml::String(s) => Some(s.clone()),
                            Yaml::Integer(i) => Some(i.to_string()),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            ops.push(Operation {
                method: method.to_uppercase(),
                path: path.to_string(),
                open,
                testing_only,
                statuses,
            });
        }
    }
    ops.sort();
    Ok(ops)
}
