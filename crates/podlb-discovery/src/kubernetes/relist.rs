//! A store that a watcher's (re-)list replaces whole: while a list is under
//! way its objects are gathered aside, and swapped in when it is done, so
//! readers never see a half-listed set. Used by the slices of one
//! `kubernetes:///` Service and by both stores of the catalog. It knows
//! nothing of what it stores.

/// `S` as it is now, and the next `S` while a list is under way.
#[derive(Debug, Default)]
pub(crate) struct Relisted<S> {
    current: S,
    listing: Option<S>,
}

impl<S: Default> Relisted<S> {
    /// A (re-)list begins: what it lists goes aside.
    pub(crate) fn begin_list(&mut self) {
        self.listing = Some(S::default());
    }

    /// The store the list under way fills (a fresh one if the list's start
    /// was missed).
    pub(crate) fn listing_mut(&mut self) -> &mut S {
        self.listing.get_or_insert_with(S::default)
    }

    /// The list is complete: it replaces the current store.
    pub(crate) fn end_list(&mut self) {
        self.current = self.listing.take().unwrap_or_default();
    }

    /// The list under way failed: what it gathered is dropped, and the
    /// current store stays until a list completes.
    pub(crate) fn abandon_list(&mut self) {
        self.listing = None;
    }

    /// The store as it is now (the last complete list and the changes
    /// since).
    pub(crate) fn current(&self) -> &S {
        &self.current
    }

    /// The store as it is now, to apply a watch event to.
    pub(crate) fn current_mut(&mut self) -> &mut S {
        &mut self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_shows_only_when_done() {
        let mut store: Relisted<Vec<u8>> = Relisted::default();
        store.current_mut().push(1);
        store.begin_list();
        store.listing_mut().push(2);
        assert_eq!(store.current(), &[1], "the old store serves meanwhile");
        store.end_list();
        assert_eq!(store.current(), &[2]);
    }

    #[test]
    fn an_abandoned_list_leaves_nothing_for_the_next() {
        let mut store: Relisted<Vec<u8>> = Relisted::default();
        store.current_mut().push(1);
        store.listing_mut().push(2);
        store.abandon_list();
        assert_eq!(store.current(), &[1]);
        store.listing_mut().push(3);
        store.end_list();
        assert_eq!(store.current(), &[3], "the failed list's 2 is gone");
    }

    #[test]
    fn an_empty_list_empties_the_store() {
        let mut store: Relisted<Vec<u8>> = Relisted::default();
        store.current_mut().push(1);
        store.begin_list();
        store.end_list();
        assert!(store.current().is_empty());
    }
}
