//! Which definitions a reload adds, removes and changes, as plain code: the
//! [`super::DefinitionKeeper`] carries the result out. Definitions are
//! matched by URI (unique, [`crate::settings::Settings::validate`]); a
//! definition whose attributes or check differ is changed.

use std::collections::BTreeMap;

use crate::settings::ServiceDefinition;

/// The differences between two lists of definitions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DefinitionDiff {
    /// Definitions whose URI is new.
    pub added: Vec<ServiceDefinition>,
    /// URIs no longer defined.
    pub removed: Vec<String>,
    /// Definitions of a known URI whose attributes or check changed.
    pub changed: Vec<ServiceDefinition>,
}

impl DefinitionDiff {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// What turns `old` into `new`, each list in URI order.
pub fn diff(old: &[ServiceDefinition], new: &[ServiceDefinition]) -> DefinitionDiff {
    let old: BTreeMap<&str, &ServiceDefinition> = old.iter().map(|d| (d.uri.as_str(), d)).collect();
    let new: BTreeMap<&str, &ServiceDefinition> = new.iter().map(|d| (d.uri.as_str(), d)).collect();
    let mut out = DefinitionDiff::default();
    for (uri, def) in &new {
        match old.get(uri) {
            None => out.added.push((*def).clone()),
            Some(was) if was != def => out.changed.push((*def).clone()),
            Some(_) => {}
        }
    }
    out.removed = old
        .keys()
        .filter(|uri| !new.contains_key(*uri))
        .map(|uri| (*uri).to_string())
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(uri: &str, attrs: &[(&str, &str)]) -> ServiceDefinition {
        ServiceDefinition {
            uri: uri.into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            check: None,
        }
    }

    #[test]
    fn identical_lists_differ_in_nothing_whatever_their_order() {
        let a = vec![def("tcp://a:1", &[]), def("tcp://b:1", &[("k", "v")])];
        let b = vec![a[1].clone(), a[0].clone()];
        assert!(diff(&a, &b).is_empty());
    }

    #[test]
    fn additions_removals_and_changes_are_told_apart() {
        let old = vec![
            def("tcp://keep:1", &[]),
            def("tcp://gone:1", &[]),
            def("tcp://attrs:1", &[("v", "1")]),
            def("tcp://check:1", &[]),
        ];
        let mut checked = def("tcp://check:1", &[]);
        checked.check = toml::from_str("tcp = \"127.0.0.1:1\"").ok();
        assert!(checked.check.is_some());
        let new = vec![
            def("tcp://keep:1", &[]),
            def("tcp://attrs:1", &[("v", "2")]),
            def("tcp://new:1", &[]),
            checked.clone(),
        ];
        let d = diff(&old, &new);
        assert_eq!(d.added, vec![def("tcp://new:1", &[])]);
        assert_eq!(d.removed, vec!["tcp://gone:1".to_string()]);
        assert_eq!(
            d.changed,
            vec![def("tcp://attrs:1", &[("v", "2")]), checked]
        );
    }

    #[test]
    fn from_nothing_everything_is_added_and_to_nothing_removed() {
        let defs = vec![def("tcp://a:1", &[]), def("tcp://b:1", &[])];
        let up = diff(&[], &defs);
        assert_eq!(up.added, defs);
        assert!(up.removed.is_empty() && up.changed.is_empty());
        let down = diff(&defs, &[]);
        assert_eq!(
            down.removed,
            vec!["tcp://a:1".to_string(), "tcp://b:1".to_string()]
        );
        assert!(down.added.is_empty() && down.changed.is_empty());
    }
}
