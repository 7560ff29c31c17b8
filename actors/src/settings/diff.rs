//! Which settings differ between two loads (for reload on SIGHUP): the
//! dotted keys whose values changed, and which of them can change while
//! the node runs.

use serde_json::Value;

use super::Settings;

/// Key prefixes a running node applies on reload; every other change is
/// reported and ignored until a restart.
pub const RELOADABLE: &[&str] = &["tls.", "register.", "peers", "log.", "services"];

/// The dotted keys whose values differ between `old` and `new`.
pub fn changed_keys(old: &Settings, new: &Settings) -> Vec<String> {
    let (Ok(a), Ok(b)) = (serde_json::to_value(old), serde_json::to_value(new)) else {
        return vec!["(settings)".into()];
    };
    let mut out = Vec::new();
    walk("", &a, &b, &mut out);
    out
}

fn walk(prefix: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => walk(&key, va, vb, out),
                    _ => out.push(key),
                }
            }
        }
        _ if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}

/// Can `key` change while the node runs?
pub fn reloadable(key: &str) -> bool {
    RELOADABLE.iter().any(|p| key.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Settings {
        toml::from_str(include_str!("../../../config/default.toml")).expect("defaults")
    }

    #[test]
    fn changed_keys_are_listed_and_classified() {
        let a = defaults();
        let mut b = defaults();
        assert!(changed_keys(&a, &b).is_empty());
        b.tls.cert = "/x.pem".into();
        b.listen.client = "127.0.0.1:1".into();
        b.register.allowed_uids = vec![5];
        let keys = changed_keys(&a, &b);
        assert_eq!(keys, ["listen.client", "register.allowed_uids", "tls.cert"]);
        let fixed: Vec<&String> = keys.iter().filter(|k| !reloadable(k)).collect();
        assert_eq!(fixed, ["listen.client"]);
    }
}
