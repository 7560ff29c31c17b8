//! Origin names shared by every entry of the services table: a node holds
//! one allocation per origin name rather than one per service (there are
//! few origins and many services). Names nothing refers to any more are
//! forgotten when the table purges.

use std::{collections::BTreeSet, sync::Arc};

use super::SharedStr;

/// The origin names in use.
#[derive(Debug, Default)]
pub(super) struct Interner(BTreeSet<SharedStr>);

impl Interner {
    /// The shared copy of `name`, kept from now on if it is new.
    pub(super) fn intern(&mut self, name: &SharedStr) -> SharedStr {
        if let Some(held) = self.0.get(&**name) {
            return held.clone();
        }
        self.0.insert(name.clone());
        name.clone()
    }

    /// Forgets the names only the interner still holds.
    pub(super) fn forget_unused(&mut self) {
        self.0.retain(|name| Arc::strong_count(name) > 1);
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_copy_per_name_until_unused() {
        let mut names = Interner::default();
        let a = names.intern(&SharedStr::from("n1"));
        let b = names.intern(&SharedStr::from("n1"));
        assert!(Arc::ptr_eq(&a, &b));
        let c = names.intern(&SharedStr::from("n2"));
        assert_eq!(names.len(), 2);
        drop((a, b));
        names.forget_unused();
        assert_eq!(names.len(), 1);
        assert!(Arc::ptr_eq(&c, &names.intern(&SharedStr::from("n2"))));
    }
}
