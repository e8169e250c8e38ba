//! `sweep: {mode: zip|grid, parameters: {name: [values]}}`: one job per point, with every
//! `"{name}"` placeholder in the file replaced by the point's value. Replacement happens on the
//! text, so errors in an expanded job still point at the line the user wrote.

use serde_json::Value;

/// The points of the sweep (one empty point when there is no sweep).
pub fn points(raw: &Value) -> Result<Vec<Vec<(String, Value)>>, String> {
    let Some(sweep) = raw.get("sweep").filter(|v| !v.is_null()) else {
        return Ok(vec![Vec::new()]);
    };
    let obj = sweep
        .as_object()
        .ok_or("sweep must be a mapping with mode and parameters")?;
    for k in obj.keys() {
        if k != "mode" && k != "parameters" {
            return Err(format!("sweep: unknown key '{k}' (mode, parameters)"));
        }
    }
    let mode = obj.get("mode").and_then(Value::as_str).unwrap_or("grid");
    let params = obj
        .get("parameters")
        .and_then(Value::as_object)
        .ok_or("sweep.parameters must be a mapping of name: [values]")?;
    let mut lists = Vec::new();
    for (k, v) in params {
        let list = v
            .as_array()
            .ok_or(format!("Sweep parameter '{k}' must be a list"))?;
        if list.is_empty() {
            return Err(format!("Sweep parameter '{k}' must not be empty"));
        }
        lists.push((k.clone(), list.clone()));
    }
    match mode {
        "zip" => {
            let n = lists.first().map_or(0, |l| l.1.len());
            if let Some((k, l)) = lists.iter().find(|l| l.1.len() != n) {
                return Err(format!(
                    "sweep mode zip: parameter '{k}' has {} values, the others {n}",
                    l.len()
                ));
            }
            Ok((0..n)
                .map(|i| {
                    lists
                        .iter()
                        .map(|(k, l)| (k.clone(), l[i].clone()))
                        .collect()
                })
                .collect())
        }
        "grid" => {
            let mut out: Vec<Vec<(String, Value)>> = vec![Vec::new()];
            for (k, l) in &lists {
                out = out
                    .into_iter()
                    .flat_map(|p| {
                        l.iter().map(move |v| {
                            let mut q = p.clone();
                            q.push((k.clone(), v.clone()));
                            q
                        })
                    })
                    .collect();
            }
            Ok(out)
        }
        other => Err(format!("sweep.mode '{other}' is not supported (zip, grid)")),
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Replace the point's placeholders: a whole quoted `"{k}"` becomes the value itself (a number
/// stays a number), and `{k}` inside a longer string becomes the value's text.
pub fn substitute(text: &str, point: &[(String, Value)]) -> String {
    let mut out = text.to_string();
    for (k, v) in point {
        let whole = match v {
            Value::String(s) => serde_json::to_string(s).expect("string"),
            other => other.to_string(),
        };
        out = out
            .replace(&format!("\"{{{k}}}\""), &whole)
            .replace(&format!("'{{{k}}}'"), &whole);
        out = out.replace(&format!("{{{k}}}"), &scalar_text(v));
    }
    out
}

/// The 1-based line of a top-level key.
pub fn line_of(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .position(|l| l.starts_with(&format!("{key}:")))
        .map(|i| i as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn zip_pairs_and_grid_multiplies() {
        let raw = json!({"sweep": {"mode": "zip", "parameters": {"c": [1, 2], "isl": [10, 20]}}});
        assert_eq!(points(&raw).unwrap().len(), 2);
        assert_eq!(
            points(&raw).unwrap()[1],
            vec![("c".into(), json!(2)), ("isl".into(), json!(20))]
        );
        let raw =
            json!({"sweep": {"mode": "grid", "parameters": {"c": [1, 2, 3], "isl": [10, 20]}}});
        assert_eq!(points(&raw).unwrap().len(), 6);
        assert_eq!(points(&json!({})).unwrap(), vec![Vec::new()]);
    }

    #[test]
    fn bad_sweeps_are_named() {
        let e = points(&json!({"sweep": {"parameters": {"c": 4}}})).unwrap_err();
        assert_eq!(e, "Sweep parameter 'c' must be a list");
        let e = points(&json!({"sweep": {"mode": "zip", "parameters": {"a": [1], "b": [1, 2]}}}))
            .unwrap_err();
        assert!(e.contains("'b'"), "{e}");
    }

    #[test]
    fn placeholders_keep_types_and_lines() {
        let text = "name: \"run-{c}\"\nconcurrency: \"{c}\"\nmodel: '{m}'\n";
        let out = substitute(
            text,
            &[("c".into(), json!(64)), ("m".into(), json!("tiny"))],
        );
        assert_eq!(out, "name: \"run-64\"\nconcurrency: 64\nmodel: \"tiny\"\n");
        assert_eq!(line_of(text, "model"), Some(3));
    }
}
