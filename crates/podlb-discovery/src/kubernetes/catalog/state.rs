//! The catalog's fold, with no I/O: the events of the Service watch and of
//! the EndpointSlice watch go in, [`CatalogEvent`]s come out.
//!
//! ```text
//!  Service events ──► services: selected Services (key → ports, annotations)
//!                                           │ joined by key
//!  slice events ────► slices: every slice of the watched namespaces,
//!                     grouped by their kubernetes.io/service-name label
//!                                           │
//!          Reset (both lists done) │ Upsert (one Service) │ Remove
//! ```
//!
//! A list may start without [`Event::Init`] (the watch drops it, see
//! `catalog::watch`): the first listed object or the end of the list
//! begins it, and an error abandons it.
//!
//! A slice event costs O(its Service): slices are grouped by Service, and
//! only the touched Service's view is rebuilt. Slices of Services not
//! selected are kept, so a Service that becomes selected has its endpoints
//! at once. Nothing is yielded before both first lists are done.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kube::runtime::watcher::Event;

use super::CatalogEvent;
use super::view::{ServiceKey, ServicePort, ServiceView};
use crate::kubernetes::relist::Relisted;
use crate::kubernetes::slices::Slice;

/// A Service as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ServiceRecord {
    pub(super) key: ServiceKey,
    pub(super) annotations: BTreeMap<String, String>,
    pub(super) ports: Vec<ServicePort>,
}

/// A slice, with where it belongs.
#[derive(Debug, Clone)]
pub(super) struct SliceRecord {
    pub(super) namespace: String,
    /// Its `kubernetes.io/service-name` label; `None`: it belongs to none.
    pub(super) service: Option<String>,
    pub(super) slice: Arc<Slice>,
}

/// Every slice, grouped by the Service it belongs to.
#[derive(Debug, Default)]
struct SliceIndex {
    by_service: HashMap<ServiceKey, BTreeMap<String, Arc<Slice>>>,
    /// (namespace, slice name) → its Service's name: a slice whose label
    /// changes must leave its old Service.
    owner: HashMap<(String, String), String>,
}

impl SliceIndex {
    /// Adds or replaces a slice; returns the Services whose slices changed.
    fn insert(&mut self, record: SliceRecord) -> Vec<ServiceKey> {
        let Some(service) = record.service else {
            return self
                .remove(&record.namespace, record.slice.name())
                .into_iter()
                .collect();
        };
        let key = ServiceKey::new(record.namespace.clone(), service.clone());
        let owner_key = (record.namespace, record.slice.name().to_string());
        let mut touched = Vec::new();
        if let Some(old) = self.owner.insert(owner_key.clone(), service)
            && old != key.name
        {
            let old_key = ServiceKey::new(owner_key.0.clone(), old);
            self.take(&old_key, &owner_key.1);
            touched.push(old_key);
        }
        let slices = self.by_service.entry(key.clone()).or_default();
        let before = slices.insert(owner_key.1, record.slice.clone());
        if before.as_deref() != Some(&*record.slice) {
            touched.push(key);
        }
        touched
    }

    /// Removes a slice; returns the Service it belonged to.
    fn remove(&mut self, namespace: &str, name: &str) -> Option<ServiceKey> {
        let service = self
            .owner
            .remove(&(namespace.to_string(), name.to_string()))?;
        let key = ServiceKey::new(namespace, service);
        self.take(&key, name);
        Some(key)
    }

    fn take(&mut self, key: &ServiceKey, name: &str) {
        if let Some(slices) = self.by_service.get_mut(key) {
            slices.remove(name);
            if slices.is_empty() {
                self.by_service.remove(key);
            }
        }
    }

    fn of(&self, key: &ServiceKey) -> Vec<Arc<Slice>> {
        self.by_service
            .get(key)
            .map(|slices| slices.values().cloned().collect())
            .unwrap_or_default()
    }
}

/// The selected Services and every slice, as the two watches left them.
#[derive(Debug, Default)]
pub(super) struct Catalog {
    /// Only these Service names, if any.
    names: Vec<String>,
    services: Relisted<HashMap<ServiceKey, ServiceRecord>>,
    slices: Relisted<SliceIndex>,
    services_listed: bool,
    slices_listed: bool,
}

impl Catalog {
    /// An empty catalog that keeps only the Services named `names`, or all
    /// if `names` is empty.
    pub(super) fn new(names: Vec<String>) -> Self {
        Catalog {
            names,
            ..Catalog::default()
        }
    }

    /// Applies an event of the Service watch.
    pub(super) fn on_service(&mut self, event: Event<ServiceRecord>) -> Option<CatalogEvent> {
        match event {
            Event::Init => {
                self.services.begin_list();
                None
            }
            Event::InitApply(record) => {
                if self.selects(&record.key) {
                    self.services
                        .listing_mut()
                        .insert(record.key.clone(), record);
                }
                None
            }
            Event::InitDone => {
                self.services.end_list();
                self.services_listed = true;
                self.reset()
            }
            Event::Apply(record) => {
                if !self.selects(&record.key) {
                    return None;
                }
                let key = record.key.clone();
                let services = self.services.current_mut();
                if services.get(&key) == Some(&record) {
                    return None;
                }
                services.insert(key.clone(), record);
                self.upsert(&key)
            }
            Event::Delete(record) => {
                self.services.current_mut().remove(&record.key)?;
                self.ready().then_some(CatalogEvent::Remove(record.key))
            }
        }
    }

    /// Applies an event of the EndpointSlice watch.
    pub(super) fn on_slice(&mut self, event: Event<SliceRecord>) -> Vec<CatalogEvent> {
        let touched = match event {
            Event::Init => {
                self.slices.begin_list();
                return Vec::new();
            }
            Event::InitApply(record) => {
                self.slices.listing_mut().insert(record);
                return Vec::new();
            }
            Event::InitDone => {
                self.slices.end_list();
                self.slices_listed = true;
                return self.reset().into_iter().collect();
            }
            Event::Apply(record) => self.slices.current_mut().insert(record),
            Event::Delete(record) => self
                .slices
                .current_mut()
                .remove(&record.namespace, record.slice.name())
                .into_iter()
                .collect(),
        };
        touched.iter().filter_map(|key| self.upsert(key)).collect()
    }

    /// The Service watch failed: a list under way starts over.
    pub(super) fn on_service_error(&mut self) {
        self.services.abandon_list();
    }

    /// The EndpointSlice watch failed: a list under way starts over.
    pub(super) fn on_slice_error(&mut self) {
        self.slices.abandon_list();
    }

    fn selects(&self, key: &ServiceKey) -> bool {
        self.names.is_empty() || self.names.contains(&key.name)
    }

    /// Both first lists are done: events may be yielded.
    fn ready(&self) -> bool {
        self.services_listed && self.slices_listed
    }

    /// The whole selected set, once both watches have listed.
    fn reset(&self) -> Option<CatalogEvent> {
        if !self.ready() {
            return None;
        }
        let mut views: Vec<ServiceView> = self
            .services
            .current()
            .values()
            .map(|record| self.view(record))
            .collect();
        views.sort_by(|a, b| a.key.cmp(&b.key));
        Some(CatalogEvent::Reset(views))
    }

    /// The new view of `key`, if it is selected and events may be yielded.
    fn upsert(&self, key: &ServiceKey) -> Option<CatalogEvent> {
        if !self.ready() {
            return None;
        }
        let record = self.services.current().get(key)?;
        Some(CatalogEvent::Upsert(self.view(record)))
    }

    fn view(&self, record: &ServiceRecord) -> ServiceView {
        ServiceView::from_store(
            record.key.clone(),
            record.annotations.clone(),
            record.ports.clone(),
            self.slices.current().of(&record.key),
        )
    }
}

#[cfg(test)]
mod tests;
